/*
 * insn_profile: a QEMU TCG plugin that profiles what insn_count.c counts.
 * For every region between the START and STOP markers (the same markers,
 * the same rule: strictly after START up to and including STOP) it writes
 * how often each guest instruction executed, per context.
 *
 * A context is a kernel stack. capOS links every user program at the same
 * address, so a user address alone does not say whether the client or the
 * server ran it; the kernel stack does. The plugin recognises the kernel's
 * `switch_context` (kernel/src/arch/x86_64/syscall.rs) by its bytes
 * (push rbx, rbp, r12-r15; mov [rdi], rsp; mov rsp, rsi) and watches the
 * stack address its first push writes: everything executed since the
 * previous switch ran in the context it leaves. (A memory callback on the
 * first pop after the switch, which would name the context entered, never
 * fired under QEMU 7.2, hence the segment buffer.) Context 0 is the one
 * that executed START (and STOP); the others are numbered as they first
 * switch away. switch_context's block counts to the context that called it.
 *
 * Output (outfile=PATH), per region k:
 *   region <k> insns=<n> switches=<s> contexts=<c>   (n: as insn_count.c)
 *   <k> <ctx> <insn vaddr hex> <tb vaddr hex> <count>   one line per insn
 *   end <k>
 * An instruction appears once per (ctx, translation block it ran in).
 * The profile counts whole blocks as they start (one callback per block
 * execution, plus the partial blocks around the markers), so a block that
 * an exception or an I/O re-translation cuts short is counted whole; the
 * total printed is the profile's own sum, to compare with insn_count.c's.
 * Ignores WAIT/RESUME (the IPC benchmarks have none).
 *
 * Usage: -plugin PATH/libinsn_profile.so,outfile=FILE (may be loaded beside
 * libinsn_count.so; -smp 1). Built and driven by tools/profile-ipc.py.
 * With several vCPUs, `rr=on` and -accel tcg,thread=single (make
 * bench-smp's icount boot): the counts per instruction are right, but the
 * vCPUs' segments interleave, so what ran in user mode may be put down to
 * the other CPU's context (kernel symbols are named by address, not by
 * context, and stay right).
 * The plugin API is declared by hand, as in insn_count.c (API version 1).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;

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

struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W = 2, QEMU_PLUGIN_MEM_RW = 3 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info, uint64_t vaddr,
                                          void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
extern const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                                   enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_mem_cb_t cb,
                                             enum qemu_plugin_cb_flags flags, enum qemu_plugin_mem_rw rw,
                                             void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

static const uint8_t MARK_START[7] = {0x0f, 0x1f, 0x80, 0x53, 0x50, 0x41, 0x43};
static const uint8_t MARK_STOP[7] = {0x0f, 0x1f, 0x80, 0x45, 0x50, 0x41, 0x43};
/* switch_context's first eight instructions, concatenated. */
static const uint8_t SWITCH[] = {0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57,
                                 0x48, 0x89, 0x27, 0x48, 0x89, 0xf4};

#define MAX_CTX 8

struct block {
    uint64_t vaddr;
    size_t n;
    uint64_t *insn_vaddr;       /* n */
    uint64_t *count;            /* MAX_CTX * n, this region (NULL until touched) */
    bool touched;
    struct block *next_touched;
};

struct marker {
    struct block *b;
    size_t idx;
};

/* What ran since the last switch (its context is known only when it
 * switches away): blocks, with the instruction range and sign. */
struct piece {
    struct block *b;
    uint32_t from, to;
    int32_t d;
};

static FILE *out;
static bool region_open;
static unsigned region_number;
static unsigned nctx;
static uint64_t ctx_key[MAX_CTX]; /* kernel stack slot, see key() */
static struct block *touched;
static struct piece *seg;
static size_t seg_len, seg_cap;
static uint64_t switches;

static uint64_t key(uint64_t sp)
{
    /* Kernel stacks live in 1 MiB slots (kernel/src/mm/stacks.rs). */
    return sp >> 20;
}

static void push(struct block *b, size_t from, size_t to, int d)
{
    if (seg_len == seg_cap) {
        seg_cap = seg_cap ? 2 * seg_cap : 4096;
        seg = realloc(seg, seg_cap * sizeof *seg);
    }
    seg[seg_len++] = (struct piece){b, (uint32_t)from, (uint32_t)to, d};
}

/* Count the current segment to context `c`. */
static void flush(unsigned c)
{
    for (size_t j = 0; j < seg_len; j++) {
        struct block *b = seg[j].b;
        if (!b->touched) {
            b->touched = true;
            b->count = calloc(MAX_CTX * b->n + 1, sizeof(uint64_t));
            b->next_touched = touched;
            touched = b;
        }
        for (size_t i = seg[j].from; i < seg[j].to; i++) {
            b->count[c * b->n + i] += (uint64_t)(int64_t)seg[j].d;
        }
    }
    seg_len = 0;
}

static void on_tb(unsigned int vcpu, void *ud)
{
    (void)vcpu;
    if (region_open) {
        struct block *b = ud;
        push(b, 0, b->n, 1);
    }
}

static void on_start(unsigned int vcpu, void *ud)
{
    struct marker *m = ud;
    (void)vcpu;
    region_open = true;
    nctx = 0;
    switches = 0;
    seg_len = 0;
    push(m->b, m->idx + 1, m->b->n, 1);
}

static unsigned ctx_of(uint64_t k)
{
    for (unsigned c = 0; c < nctx; c++) {
        if (ctx_key[c] == k) {
            return c;
        }
    }
    if (nctx == MAX_CTX) {
        return MAX_CTX - 1;
    }
    ctx_key[nctx] = k;
    return nctx++;
}

static void on_stop(unsigned int vcpu, void *ud)
{
    struct marker *m = ud;
    (void)vcpu;
    if (!region_open) {
        return;
    }
    push(m->b, m->idx + 1, m->b->n, -1);
    /* STOP runs where START ran: context 0. */
    flush(0);
    if (nctx == 0) {
        nctx = 1;
    }
    region_open = false;
    region_number++;
    uint64_t total = 0;
    for (struct block *b = touched; b; b = b->next_touched) {
        for (size_t i = 0; i < MAX_CTX * b->n; i++) {
            total += b->count[i];
        }
    }
    fprintf(out, "region %u insns=%llu switches=%llu contexts=%u\n", region_number, (unsigned long long)total,
            (unsigned long long)switches, nctx);
    for (struct block *b = touched, *next; b; b = next) {
        next = b->next_touched;
        for (unsigned c = 0; c < MAX_CTX; c++) {
            for (size_t i = 0; i < b->n; i++) {
                uint64_t k = b->count[c * b->n + i];
                if (k) {
                    fprintf(out, "%u %u %llx %llx %llu\n", region_number, c, (unsigned long long)b->insn_vaddr[i],
                            (unsigned long long)b->vaddr, (unsigned long long)k);
                }
            }
        }
        free(b->count);
        b->count = NULL;
        b->touched = false;
    }
    touched = NULL;
    fprintf(out, "end %u\n", region_number);
    fflush(out);
}

/* The first push of switch_context writes the stack of the context it
 * leaves: everything since the last switch ran there. */
static void on_leave(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *ud)
{
    (void)vcpu;
    (void)info;
    (void)ud;
    if (region_open) {
        flush(ctx_of(key(vaddr)));
        switches++;
    }
}

static bool is(struct qemu_plugin_insn *insn, const uint8_t *mark, size_t len)
{
    return qemu_plugin_insn_size(insn) == len && memcmp(qemu_plugin_insn_data(insn), mark, len) == 0;
}

static bool is_switch(struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb), off = 0;
    if (n < 9) {
        return false;
    }
    for (size_t i = 0; i < 8; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        size_t s = qemu_plugin_insn_size(insn);
        if (off + s > sizeof SWITCH || memcmp(qemu_plugin_insn_data(insn), SWITCH + off, s) != 0) {
            return false;
        }
        off += s;
    }
    return off == sizeof SWITCH;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    struct block *b = calloc(1, sizeof *b);
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n = n;
    b->insn_vaddr = calloc(n ? n : 1, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        b->insn_vaddr[i] = qemu_plugin_insn_vaddr(insn);
        if (is(insn, MARK_START, 7) || is(insn, MARK_STOP, 7)) {
            struct marker *m = malloc(sizeof *m);
            m->b = b;
            m->idx = i;
            qemu_plugin_register_vcpu_insn_exec_cb(insn, is(insn, MARK_START, 7) ? on_start : on_stop,
                                                   QEMU_PLUGIN_CB_NO_REGS, m);
        }
    }
    if (is_switch(tb)) {
        qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, 0), on_leave, QEMU_PLUGIN_CB_NO_REGS,
                                         QEMU_PLUGIN_MEM_W, NULL);
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void at_exit(qemu_plugin_id_t id, void *ud)
{
    (void)id;
    (void)ud;
    if (out) {
        fclose(out);
        out = NULL;
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    bool rr = false;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "outfile=", 8) == 0 && argv[i][8] != '\0') {
            path = argv[i] + 8;
        } else if (strcmp(argv[i], "rr=on") == 0) {
            rr = true;
        } else {
            fprintf(stderr, "insn_profile: unknown argument '%s' (expected outfile=PATH, rr=on)\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL) {
        fputs("insn_profile: missing argument outfile=PATH\n", stderr);
        return -1;
    }
    if (info->system_emulation && info->system.max_vcpus > 1 && !rr) {
        fputs("insn_profile: run with -smp 1 (or rr=on with -accel tcg,thread=single)\n", stderr);
        return -1;
    }
    out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "insn_profile: cannot open outfile '%s'\n", path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
