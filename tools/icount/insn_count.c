/*
 * insn_count: a QEMU TCG plugin that counts the guest instructions actually
 * executed between two marker instructions the guest emits (and up to
 * milestone markers, for the boot figures).
 *
 *   START     nopl 0x43415053(%rax)   0f 1f 80 53 50 41 43   ("SPAC")
 *   STOP      nopl 0x43415045(%rax)   0f 1f 80 45 50 41 43   ("EPAC")
 *   WAIT      nopl 0x43415057(%rax)   0f 1f 80 57 50 41 43   ("WPAC")
 *   RESUME    nopl 0x43415052(%rax)   0f 1f 80 52 50 41 43   ("RPAC")
 *   MILESTONE nopl 0x4341504d(%rax)   0f 1f 80 4d 50 41 43   ("MPAC")
 *
 * All five are architectural no-ops, so a guest that runs without the plugin
 * loses nothing. The guest side lives in abi/src/icount.rs (capOS kernel
 * and userspace) and tools/bench-linux/bench.c (the Linux guest).
 *
 * What a region counts: every instruction executed strictly after START,
 * up to and including STOP, at every privilege level (guest kernel, guest
 * user, firmware), on any vCPU. A halted CPU executes nothing, so time
 * spent waiting for a device adds nothing. An instruction that QEMU starts
 * twice (it faulted and was restarted, or QEMU re-translated its block to
 * end at an I/O access under -icount) counts each start: that is what the
 * CPU did, and it happens identically on every run.
 *
 * How: every instruction except the markers gets an inline "add 1 to
 * `executed`" (generated into the translated code, no call). The two
 * markers get no inline add but a callback instead; START remembers
 * `executed`, STOP writes `executed - start + 1` (the +1 is STOP itself).
 * Because the markers never touch `executed`, the order in which QEMU runs
 * inline ops and callbacks of one instruction does not matter.
 *
 * WAIT .. RESUME brackets a busy wait for a device inside a region (a
 * driver polling a completion queue with interrupts off): the instructions
 * between them are left out of the region, as a halted CPU's would be,
 * because how many turns a poll loop takes depends on how fast the host
 * finishes the emulated I/O, not on the guest. WAIT outside a region, or
 * RESUME without WAIT, is ignored (a driver waits whether or not anyone
 * measures); a region that stops while waiting is an error. Every
 * WAIT..RESUME span is also left out of the milestones' counts.
 *
 * MILESTONE marks a point of the whole run, not a region: the first time
 * the CPU executes a MILESTONE marker at a given guest address, the plugin
 * writes `milestone <k> insns=<n>`, where n counts every instruction
 * executed since QEMU started (markers and WAIT..RESUME spans left out).
 * Later executions at the same address write nothing, so a milestone can
 * sit in code that runs often (every process's first entry to user mode);
 * the difference of two milestones is what ran between them. Milestones
 * are never errors: the markers are in code every boot runs, measured or
 * not. (Two address spaces with a marker at the same address count as one
 * milestone; at most MAX_MILESTONES addresses are told apart.)
 *
 * Output: one line per STOP, `region <k> insns=<n>` (k = 1, 2, ...), and
 * one per milestone, `milestone <k> insns=<n>`, to the
 * file given by `outfile=PATH`, flushed at once (QEMU may be killed). A
 * START while a region is open, a STOP with none open, or a region still
 * open when QEMU exits is written as a line beginning `error:`; the runner
 * treats any such line as a failed benchmark.
 *
 * The counter is shared by all vCPUs and the inline adds are not atomic,
 * so the plugin refuses to load on a machine with more than one vCPU
 * unless told `rr=on`: the runner passes it together with
 * `-accel tcg,thread=single`, which runs every vCPU in one thread, in
 * turn, so no two adds ever race (make bench-smp's round trips across
 * CPUs). A region then counts what every vCPU executed between START and
 * STOP.
 *
 * Errors in the arguments go to stderr and make QEMU refuse to start.
 *
 * Usage: qemu-system-x86_64 ... -plugin PATH/libinsn_count.so,outfile=FILE
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * The QEMU plugin API, declared here by hand. Debian ships no qemu-plugin.h
 * (it is not in any -dev package of bookworm's qemu 7.2) and we do not copy
 * QEMU's header into this repository. The plugin interface is a plain C ABI
 * exported by qemu-system-x86_64 (`nm -D` lists the qemu_plugin_* symbols);
 * below are exactly the types and functions this plugin uses, written from
 * the documented API of plugin version 1 (QEMU 7.x, docs/devel/tcg-plugins).
 */
typedef uint64_t qemu_plugin_id_t;

/* What QEMU tells the plugin about itself and the machine at install time. */
typedef struct {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;

struct qemu_plugin_tb;   /* opaque: a block being translated */
struct qemu_plugin_insn; /* opaque: one instruction of that block */

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                                   enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                       uint64_t imm);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

/* The API version this plugin was written against; QEMU refuses a mismatch. */
QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* ---- the plugin ------------------------------------------------------- */

static const uint8_t MARK_START[7] = {0x0f, 0x1f, 0x80, 0x53, 0x50, 0x41, 0x43};
static const uint8_t MARK_STOP[7] = {0x0f, 0x1f, 0x80, 0x45, 0x50, 0x41, 0x43};
static const uint8_t MARK_WAIT[7] = {0x0f, 0x1f, 0x80, 0x57, 0x50, 0x41, 0x43};
static const uint8_t MARK_RESUME[7] = {0x0f, 0x1f, 0x80, 0x52, 0x50, 0x41, 0x43};
static const uint8_t MARK_MILESTONE[7] = {0x0f, 0x1f, 0x80, 0x4d, 0x50, 0x41, 0x43};

/* Instructions executed so far, markers excluded (see above). */
static uint64_t executed;
static uint64_t region_start;
static bool region_open;
/* In a WAIT..RESUME span since `wait_start` (whether or not a region is
 * open); the instructions left out of the open region so far, and of the
 * whole run (for the milestones). */
static bool waiting;
static uint64_t wait_start;
static uint64_t excluded;
static uint64_t excluded_total;
static unsigned region_number;
/* The guest addresses of the MILESTONE markers translated so far, whether
 * each has been reported, and how many have. */
#define MAX_MILESTONES 64
static uint64_t milestone_addr[MAX_MILESTONES];
static bool milestone_reported[MAX_MILESTONES];
static unsigned milestone_addrs;
static unsigned milestone_number;
static bool milestone_overflow_reported;
static FILE *out;

static void emit(const char *line)
{
    fputs(line, out);
    fputc('\n', out);
    fflush(out);
}

static void on_start(unsigned int vcpu_index, void *userdata)
{
    char line[160];
    (void)vcpu_index;
    (void)userdata;
    if (region_open) {
        snprintf(line, sizeof line, "error: START while region %u is open (after %llu instructions); region restarted",
                 region_number + 1, (unsigned long long)(executed - region_start));
        emit(line);
    }
    region_open = true;
    region_start = executed;
    excluded = 0;
}

static void on_wait(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (!waiting) {
        waiting = true;
        wait_start = executed;
    }
}

static void on_resume(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (waiting) {
        waiting = false;
        excluded_total += executed - wait_start;
        if (region_open) {
            /* Only the part of the wait after the region began. */
            excluded += executed - (wait_start > region_start ? wait_start : region_start);
        }
    }
}

static void on_milestone(unsigned int vcpu_index, void *userdata)
{
    char line[96];
    uintptr_t k = (uintptr_t)userdata;
    (void)vcpu_index;
    if (k >= MAX_MILESTONES) {
        if (!milestone_overflow_reported) {
            milestone_overflow_reported = true;
            snprintf(line, sizeof line, "error: more than %d milestone addresses", MAX_MILESTONES);
            emit(line);
        }
        return;
    }
    if (milestone_reported[k]) {
        return;
    }
    milestone_reported[k] = true;
    milestone_number++;
    snprintf(line, sizeof line, "milestone %u insns=%llu", milestone_number,
             (unsigned long long)(executed - excluded_total - (waiting ? executed - wait_start : 0)));
    emit(line);
}

/* The index of the milestone at `vaddr` (added if new; MAX_MILESTONES when
 * the table is full). */
static uintptr_t milestone_index(uint64_t vaddr)
{
    for (unsigned i = 0; i < milestone_addrs; i++) {
        if (milestone_addr[i] == vaddr) {
            return i;
        }
    }
    if (milestone_addrs == MAX_MILESTONES) {
        return MAX_MILESTONES;
    }
    milestone_addr[milestone_addrs] = vaddr;
    return milestone_addrs++;
}

static void on_stop(unsigned int vcpu_index, void *userdata)
{
    char line[96];
    (void)vcpu_index;
    (void)userdata;
    if (!region_open) {
        snprintf(line, sizeof line, "error: STOP without START (after region %u)", region_number);
        emit(line);
        return;
    }
    region_open = false;
    region_number++;
    if (waiting) {
        snprintf(line, sizeof line, "error: region %u stopped inside a device wait (WAIT without RESUME)", region_number);
        emit(line);
        return;
    }
    snprintf(line, sizeof line, "region %u insns=%llu", region_number,
             (unsigned long long)(executed - region_start + 1 - excluded));
    emit(line);
}

static bool is_marker(struct qemu_plugin_insn *insn, const uint8_t mark[7])
{
    return qemu_plugin_insn_size(insn) == 7 && memcmp(qemu_plugin_insn_data(insn), mark, 7) == 0;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (is_marker(insn, MARK_START)) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (is_marker(insn, MARK_STOP)) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (is_marker(insn, MARK_WAIT)) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_wait, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (is_marker(insn, MARK_RESUME)) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_resume, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (is_marker(insn, MARK_MILESTONE)) {
            void *k = (void *)milestone_index(qemu_plugin_insn_vaddr(insn));
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_milestone, QEMU_PLUGIN_CB_NO_REGS, k);
        } else {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
        }
    }
}

static void on_exit(qemu_plugin_id_t id, void *userdata)
{
    char line[128];
    (void)id;
    (void)userdata;
    if (region_open) {
        snprintf(line, sizeof line, "error: region %u still open when QEMU exited", region_number + 1);
        emit(line);
    }
    fclose(out);
    out = NULL;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    bool round_robin = false;
    char msg[256];
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0 && argv[i][8] != '\0') {
            path = argv[i] + 8;
        } else if (strcmp(argv[i], "rr=on") == 0) {
            round_robin = true;
        } else {
            snprintf(msg, sizeof msg, "insn_count: unknown argument '%s' (expected outfile=PATH, rr=on)\n", argv[i]);
            fputs(msg, stderr);
            return -1;
        }
    }
    if (path == NULL) {
        fputs("insn_count: missing argument outfile=PATH\n", stderr);
        return -1;
    }
    if (info->system_emulation && info->system.max_vcpus > 1 && !round_robin) {
        snprintf(msg, sizeof msg,
                 "insn_count: %d vCPUs; the counter is shared and not atomic, so run with -smp 1 (or rr=on with -accel tcg,thread=single)\n",
                 info->system.max_vcpus);
        fputs(msg, stderr);
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        snprintf(msg, sizeof msg, "insn_count: cannot open outfile '%s'\n", path);
        fputs(msg, stderr);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
