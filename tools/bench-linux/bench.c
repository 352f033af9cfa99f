/*
 * The Linux side of capOS's benchmarks (make bench-linux): the same
 * operations capOS measures, bracketed by the same marker instructions
 * (abi/src/icount.rs explains them), counted by the same QEMU plugin
 * (tools/icount/insn_count.c).
 *
 *   getppid                  a null system call        <-> kernel null call
 *   pipe round trip          1 byte there and back     <-> endpoint null round trip
 *                            between two processes
 *   O_DIRECT read 4 KiB      sequential preads from    <-> NVMe 4 KiB QD1
 *   O_DIRECT read 128 KiB    the NVMe disk (argv[1])   <-> NVMe 128 KiB QD1
 *
 * `bench smp` (make bench-linux's second boot, 2 CPUs): the pipe round
 * trip with both processes pinned to CPU 0, and with the parent on CPU 0
 * and the child on CPU 1 (sched_setaffinity), beside make bench-smp's
 * same-CPU and cross-CPU endpoint round trips.
 *
 * `bench pairs N` (make bench-smp's Linux boots, on 1 CPU and on 2): two
 * independent pipe ping-pong pairs at once, pair k on CPU k modulo the
 * CPUs online (both sides pinned there), each making N round trips of 1
 * byte and printing the TSC cycles it took: the counterpart of make
 * bench-smp's two endpoint pairs, whose throughput ratio it prints beside
 * capOS's. Wall time, not counted instructions.
 *
 * Before each region it prints `icount: <label> ops=<n>` and waits until
 * the serial port has sent it (tcdrain), so the console's transmit
 * interrupts fall outside the region. Each operation is warmed up first
 * (page faults, caches, the child process scheduled once).
 *
 * Exit: writes to QEMU's isa-debug-exit port (0xf4), value 16 on success
 * (QEMU exits 33, what the runner expects of a clean run) and 17 on
 * failure (35), so a failure cannot pass for a clean power-off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define START() __asm__ volatile(".byte 0x0f, 0x1f, 0x80, 0x53, 0x50, 0x41, 0x43" ::: "memory")
#define STOP() __asm__ volatile(".byte 0x0f, 0x1f, 0x80, 0x45, 0x50, 0x41, 0x43" ::: "memory")

static void qemu_exit(int value)
{
    fflush(stdout);
    tcdrain(STDOUT_FILENO);
    if (ioperm(0xf4, 4, 1) == 0) {
        outl(value, 0xf4);
    }
    fprintf(stderr, "bench: cannot reach isa-debug-exit: %s\n", strerror(errno));
    exit(value == 16 ? 0 : 1);
}

static void die(const char *what)
{
    printf("bench: FAILED: %s: %s\n", what, strerror(errno));
    qemu_exit(17);
}

static void announce(const char *label, long ops)
{
    printf("icount: %s ops=%ld\n", label, ops);
    fflush(stdout);
    tcdrain(STDOUT_FILENO);
}

static void bench_getppid(long n)
{
    for (int i = 0; i < 100; i++) {
        getppid();
    }
    announce("getppid", n);
    START();
    for (long i = 0; i < n; i++) {
        getppid();
    }
    STOP();
}

/* Run this process on `cpu` only, from now on (a CPU that is not online
 * is an error: EINVAL). */
static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        die("sched_setaffinity");
    }
    int on = sched_getcpu();
    if (on != cpu) {
        printf("bench: FAILED: pinned to CPU %d, running on CPU %d\n", cpu, on);
        qemu_exit(17);
    }
}

/* A child that echoes every byte written to `to[1]` into `from[0]` until
 * the write end is closed, pinned to `cpu` (-1: wherever Linux runs it);
 * the caller keeps only `to[1]` and `from[0]`. Returns the child's pid. */
static pid_t echo_child(int to[2], int from[2], int cpu)
{
    if (pipe(to) != 0 || pipe(from) != 0) {
        die("pipe");
    }
    pid_t child = fork();
    if (child < 0) {
        die("fork");
    }
    if (child == 0) {
        if (cpu >= 0) {
            pin(cpu);
        }
        /* This side must not hold a write end of `to` itself, or it never
         * sees the end of it. */
        close(to[1]);
        close(from[0]);
        char b;
        while (read(to[0], &b, 1) == 1) {
            if (write(from[1], &b, 1) != 1) {
                _exit(1);
            }
        }
        _exit(0);
    }
    close(to[0]);
    close(from[1]);
    return child;
}

/* 1 byte to a child that echoes it, `n` times. `parent_cpu`, `child_cpu`:
 * the CPUs each side is pinned to, or -1 for wherever Linux runs it. */
static void bench_pipe(const char *label, long n, int parent_cpu, int child_cpu)
{
    int there[2], back[2];
    char b = 'x';
    pid_t child = echo_child(there, back, child_cpu);
    if (parent_cpu >= 0) {
        pin(parent_cpu);
    }
    for (int i = 0; i < 100; i++) {
        if (write(there[1], &b, 1) != 1 || read(back[0], &b, 1) != 1) {
            die("pipe warm-up");
        }
    }
    announce(label, n);
    START();
    for (long i = 0; i < n; i++) {
        if (write(there[1], &b, 1) != 1 || read(back[0], &b, 1) != 1) {
            STOP();
            die("pipe round trip");
        }
    }
    STOP();
    close(there[1]);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        die("pipe echo child");
    }
    close(back[0]);
}

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* One pair of `bench pairs`: this process and a child echoing 1 byte,
 * both on `cpu`, `n` round trips, every byte checked. */
static void pipe_pair(int k, int cpu, long n)
{
    int there[2], back[2];
    pid_t child = echo_child(there, back, cpu);
    pin(cpu);
    uint64_t t0 = rdtsc();
    for (long i = 0; i < n; i++) {
        char b = (char)i, r = 0;
        if (write(there[1], &b, 1) != 1 || read(back[0], &r, 1) != 1 || r != b) {
            printf("bench: FAILED: pipe pair %d: round trip %ld of %ld answered wrong\n", k, i, n);
            _exit(1);
        }
    }
    uint64_t cycles = rdtsc() - t0;
    close(there[1]);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("bench: FAILED: pipe pair %d: its echo child failed\n", k);
        _exit(1);
    }
    printf("bench: pipe pair %d: %ld round trips in %llu cycles\n", k, n, (unsigned long long)cycles);
    _exit(0);
}

static void bench_pairs(long n)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pid_t pair[2];
    for (int k = 0; k < 2; k++) {
        pair[k] = fork();
        if (pair[k] < 0) {
            die("fork");
        }
        if (pair[k] == 0) {
            pipe_pair(k + 1, (int)(k % cpus), n);
        }
    }
    int failed = 0;
    for (int k = 0; k < 2; k++) {
        int status;
        if (waitpid(pair[k], &status, 0) != pair[k] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed = 1;
        }
    }
    if (failed) {
        printf("bench: FAILED: a pipe pair failed\n");
        qemu_exit(17);
    }
    printf("bench: done\n");
    qemu_exit(16);
}

static void bench_read(int fd, const char *label, size_t size, long n)
{
    void *buf;
    if (posix_memalign(&buf, 4096, size) != 0) {
        die("posix_memalign");
    }
    memset(buf, 0, size);
    for (long i = 0; i < 8; i++) {
        if (pread(fd, buf, size, (off_t)(i * size)) != (ssize_t)size) {
            die("O_DIRECT warm-up read");
        }
    }
    announce(label, n);
    START();
    for (long i = 0; i < n; i++) {
        if (pread(fd, buf, size, (off_t)(i * size)) != (ssize_t)size) {
            STOP();
            die("O_DIRECT read");
        }
    }
    STOP();
    free(buf);
}

/*
 * `bench marks` (make bench-net): regions opened and closed by lines on
 * standard input (the console), as capOS's shell does with its `icount`
 * command, so the runner types the same lines to both guests while it
 * makes HTTP requests from the host:
 *
 *   icount LABEL... OPS   print `icount: LABEL ops=OPS`, then START
 *   icount stop           STOP
 *   exit                  leave (isa-debug-exit 16)
 *
 * After each line it prints the prompt `bench> ` (inside an open region,
 * as the shell's `capos$ ` is).
 */
static void marks(void)
{
    char line[256];
    int open_region = 0;
    printf("bench> ");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = 0;
        if (strcmp(line, "exit") == 0) {
            if (open_region) {
                printf("bench: FAILED: exit with a region open\n");
                qemu_exit(17);
            }
            printf("bench: done\n");
            qemu_exit(16);
        } else if (strcmp(line, "icount stop") == 0) {
            if (!open_region) {
                printf("bench: FAILED: icount stop with no region open\n");
                qemu_exit(17);
            }
            STOP();
            open_region = 0;
        } else if (strncmp(line, "icount ", 7) == 0 && !open_region) {
            char *ops = strrchr(line, ' ');
            char *end = NULL;
            long n = strtol(ops + 1, &end, 10);
            if (ops == line + 6 || *end != 0 || n < 1) {
                printf("bench: FAILED: bad line '%s'\n", line);
                qemu_exit(17);
            }
            *ops = 0;
            announce(line + 7, n);
            START();
            open_region = 1;
        } else if (line[0] != 0) {
            printf("bench: FAILED: unknown line '%s'\n", line);
            qemu_exit(17);
        }
        printf("bench> ");
        fflush(stdout);
    }
    printf("bench: FAILED: end of input\n");
    qemu_exit(17);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "marks") == 0) {
        marks();
    }
    if (argc == 2 && strcmp(argv[1], "smp") == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        if (cpus < 2) {
            printf("bench: FAILED: smp needs 2 CPUs online, not %ld\n", cpus);
            qemu_exit(17);
        }
        bench_pipe("pipe round trip pinned 1 CPU", 10000, 0, 0);
        bench_pipe("pipe round trip pinned 2 CPUs", 10000, 0, 1);
        printf("bench: done\n");
        qemu_exit(16);
    }
    if (argc == 3 && strcmp(argv[1], "pairs") == 0) {
        long n = atol(argv[2]);
        if (n <= 0) {
            printf("bench: FAILED: pairs needs a count of round trips, not '%s'\n", argv[2]);
            qemu_exit(17);
        }
        bench_pairs(n);
    }
    if (argc != 2) {
        printf("usage: bench /dev/nvmeXnY | bench marks | bench smp | bench pairs N\n");
        qemu_exit(17);
    }
    bench_getppid(100000);
    bench_pipe("pipe round trip", 10000, -1, -1);
    int fd = open(argv[1], O_RDONLY | O_DIRECT);
    if (fd < 0) {
        die(argv[1]);
    }
    bench_read(fd, "O_DIRECT read 4 KiB", 4096, 2000);
    bench_read(fd, "O_DIRECT read 128 KiB", 128 * 1024, 500);
    close(fd);
    printf("bench: done\n");
    qemu_exit(16);
    return 0;
}
