#!/usr/bin/env python3
"""Where the executed instructions of `make bench-ipc` go.

Runs the bench-ipc scenario with the profiling plugin
(tools/icount/insn_profile.c) loaded beside the counting one, and breaks
each counted region down per op: by side (user or kernel, and in which
process), by symbol, by inlined function, by source line and by basic
block, optionally with annotated disassembly. See docs/benchmarks.md.

    tools/profile-ipc.py                      # run, then report regions 1 and 2
    tools/profile-ipc.py --regions 1,2,3      # which regions to report
    tools/profile-ipc.py --no-run             # report the last run again
    tools/profile-ipc.py --annotate cap_call  # + disassembly of matching symbols
    tools/profile-ipc.py --save before.txt    # also keep the report

The build is BENCH_PROFILE=bench-prof (Cargo.toml): bench-opt with line
tables, which the runner strips from the boot image; the generated code is
bench-opt's, so the counts are the same (checked: identical region totals).

Contexts: the plugin numbers kernel stacks as they first run in a region;
context 0 executed START (the client, ping); in the round trip context 1
is the server (pong). --ctx-elf maps contexts to user programs.

Needs: python3, gcc, llvm-symbolizer (LLVM; Debian llvm), objdump, nm.
"""

import argparse
import collections
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL_BASE = 0xFFFF800000000000


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def build_plugin():
    src = os.path.join(ROOT, "tools/icount/insn_profile.c")
    so = os.path.join(ROOT, "target/icount/libinsn_profile.so")
    if not os.path.exists(so) or os.path.getmtime(so) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(so), exist_ok=True)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
                        "-o", so, src], check=True)
    return so


def run(profile, out, target):
    so = build_plugin()
    env = dict(os.environ)
    env["BENCH_PROFILE"] = profile
    # Several vCPUs (make bench-smp's icount boot) run in one thread, in
    # turn, as the counting plugin has them (the runner adds
    # -accel tcg,thread=single); the profile is told so.
    rr = ",rr=on" if target == "bench-smp" else ""
    env["QEMU_EXTRA"] = (env.get("QEMU_EXTRA", "") + " -plugin %s,outfile=%s%s" % (so, out, rr)).strip()
    print("profile-ipc: make %s with BENCH_PROFILE=%s and the profiling plugin (a few minutes)" % (target, profile),
          file=sys.stderr)
    r = subprocess.run(["make", target], cwd=ROOT, env=env, text=True, capture_output=True)
    figures = [l for l in r.stdout.splitlines() if "executed instructions per op" in l or "FAIL" in l]
    for l in figures:
        print("profile-ipc: " + l.strip(), file=sys.stderr)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        sys.exit("profile-ipc: make %s failed" % target)


def load(path):
    """{region: {(ctx, insn, tb): count}}, {region: total}"""
    regions, totals = collections.defaultdict(dict), {}
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "region":
                totals[int(w[1])] = int(w[2].split("=")[1])
            elif w[0] == "end":
                continue
            else:
                k, c, a, tb, n = int(w[0]), int(w[1]), int(w[2], 16), int(w[3], 16), int(w[4])
                key = (c, a, tb)
                regions[k][key] = regions[k].get(key, 0) + n
    return regions, totals


def labels(log):
    """[(label, ops)] in region order, from the guest's `icount:` lines."""
    out = []
    with open(log, errors="replace") as f:
        for line in f:
            m = re.search(r"icount: (.*) ops=(\d+)\s*$", line)
            if m:
                out.append((m.group(1), int(m.group(2))))
    return out


def demangle_strip(name):
    return re.sub(r"::h[0-9a-f]{16}$", "", name)


class Elf:
    def __init__(self, path):
        self.path = path
        syms = []
        for line in sh(["nm", "-n", "-C", "--defined-only", "-S", path]).splitlines():
            w = line.split(None, 3)
            if len(w) == 4 and w[2] in "tTwW":
                syms.append((int(w[0], 16), int(w[1], 16), demangle_strip(w[3])))
            elif len(w) == 3 and w[1] in "tTwW":
                syms.append((int(w[0], 16), 0, demangle_strip(w[2])))
        syms.sort()
        # global_asm labels (syscall_entry, isr_return) have no size: they
        # run to the next symbol.
        for i, (a, size, name) in enumerate(syms):
            if size == 0 and i + 1 < len(syms):
                syms[i] = (a, syms[i + 1][0] - a, name)
        self.syms = syms
        self.addrs = [s[0] for s in syms]
        self.lines = {}

    def symbol(self, a):
        import bisect
        i = bisect.bisect_right(self.addrs, a) - 1
        if i < 0:
            return ("?", 0)
        s, _size, name = self.syms[i]
        return (name, a - s)

    def symbolize(self, addrs):
        """Inline chains (innermost first) of (function, file:line)."""
        todo = sorted(set(a for a in addrs if a not in self.lines))
        if not todo:
            return
        text = sh(["llvm-symbolizer", "--inlining", "--demangle", "--functions=short", "-e", self.path],
                  input="".join("0x%x\n" % a for a in todo))
        blocks = text.split("\n\n")
        for a, b in zip(todo, blocks):
            ls = [l for l in b.strip("\n").split("\n") if l]
            chain = []
            for i in range(0, len(ls) - 1, 2):
                fn, loc = ls[i], ls[i + 1]
                loc = re.sub(r"^.*/(library/)", r"\1", loc)
                loc = loc.replace(ROOT + "/", "")
                loc = re.sub(r"^(?:.*?/\.cargo|/cargo-home)/registry/src/[^/]+/", "", loc)
                chain.append((fn, loc))
            self.lines[a] = chain or [("?", "?")]


def short_loc(loc):
    """file:line of a location (no column)."""
    m = re.match(r"(.*?):(\d+)(:\d+)?$", loc)
    return "%s:%s" % (m.group(1), m.group(2)) if m else loc


def frame_name(fn, loc):
    f = short_loc(loc).rsplit(":", 1)[0]
    return "%s (%s)" % (fn, f)


def is_lib(loc):
    """core/alloc and crates.io code (spin, capnp, arrayvec...)."""
    return loc.startswith("library/") or re.match(r"[a-z0-9_]+-\d+\.\d+\.\d+/", loc) is not None


def print_tree(node, ops, min_per_op, depth, max_depth):
    for name, (n, kids) in sorted(node.items(), key=lambda kv: -kv[1][0]):
        if n / ops < min_per_op:
            continue
        self_n = n - sum(k[0] for k in kids.values())
        print("  %9.1f %7s  %s%s" % (n / ops, "(%.0f)" % (self_n / ops) if kids else "", "  " * depth, name))
        if depth + 1 < max_depth:
            print_tree(kids, ops, min_per_op, depth + 1, max_depth)


def table(title, rows, ops, limit, total):
    print("\n%s" % title)
    print("  %9s %6s  %s" % ("per op", "%", "what"))
    shown = 0
    for what, n in sorted(rows.items(), key=lambda kv: -kv[1]):
        if limit and shown >= limit:
            rest = sum(v for k, v in rows.items()) - sum(v for k, v in sorted(rows.items(), key=lambda kv: -kv[1])[:limit])
            print("  %9.1f %6.1f  (%d more)" % (rest / ops, 100.0 * rest / total, len(rows) - limit))
            break
        print("  %9.1f %6.1f  %s" % (n / ops, 100.0 * n / total, what))
        shown += 1


def report(args, k, label, ops, data, total_plugin, elfs):
    total = sum(data.values())
    print("=" * 100)
    print("region %d: %s, %d ops: %.1f instructions per op (profile total %d, plugin total %d)"
          % (k, label, ops, total / ops, total, total_plugin))

    def elf_of(c, a):
        return elfs["kernel"] if a >= KERNEL_BASE else elfs.get(c)

    def side(c, a):
        who = args.ctx_names.get(c, "ctx%d" % c)
        return ("kernel" if a >= KERNEL_BASE else "user") + " in " + who

    # Symbolize everything once.
    per_elf = collections.defaultdict(set)
    for (c, a, tb) in data:
        e = elf_of(c, a)
        if e:
            per_elf[e].add(a)
    for e, s in per_elf.items():
        e.symbolize(s)

    by_side, by_sym, by_line, by_tb, by_outer_inner = (collections.Counter() for _ in range(5))
    tb_len = collections.defaultdict(set)
    tree = {}
    for (c, a, tb), n in data.items():
        e = elf_of(c, a)
        sd = side(c, a)
        by_side[sd] += n
        if e is None:
            by_sym["%s: ?%x" % (sd, a)] += n
            continue
        sym, _ = e.symbol(a)
        by_sym["%-18s %s" % (sd, sym)] += n
        chain = [(f if f != "??" else sym.split("::")[-1], l) for f, l in e.lines.get(a, [("?", "?")])]
        inner_fn, inner_loc = chain[0]
        by_line["%-18s %s  [%s]" % (sd, short_loc(inner_loc), inner_fn[:60])] += n
        # The innermost frame that is project code (not core/alloc).
        proj = next(((f, l) for f, l in chain if not is_lib(l)), chain[-1])
        by_outer_inner["%-18s %s" % (sd, frame_name(*proj))] += n
        # Inclusive tree of inlined frames, outermost first; core/alloc and
        # crates.io frames fold into their caller.
        path = [sd] + [frame_name(f, l) for f, l in reversed(chain) if not is_lib(l)]
        if len(path) == 1:
            path.append(frame_name(*chain[-1]))
        node = tree
        for name in path:
            node = node.setdefault(name, [0, {}])
            node[0] += n
            node = node[1]
        tsym, toff = e.symbol(tb)
        tkey = (sd, tb, tsym, toff)
        by_tb[tkey] += n
        tb_len[tkey].add(a)

    table("by side", by_side, ops, 0, total)
    table("by symbol (what nm names; LTO inlines most of the call path into a few)", by_sym, ops, args.limit, total)
    print("\ninlined call tree (inclusive per op; core/alloc/crates folded into their caller; >= %.1f per op shown)" % args.min_tree)
    print_tree(tree, ops, args.min_tree, 0, args.depth)
    table("self, by innermost project function (core/alloc/crates folded into their caller)", by_outer_inner, ops,
          args.limit, total)
    table("by source line (innermost)", by_line, ops, args.lines, total)
    print("\nby basic block (translation block start; insns = distinct instructions seen in it)")
    print("  %9s %5s  %-18s %s" % ("per op", "insns", "side", "block"))
    for (sd, tb, tsym, toff), n in sorted(by_tb.items(), key=lambda kv: (-kv[1], kv[0][1]))[: args.blocks]:
        e = elf_of(0 if sd.startswith("kernel") else [c for c, nm in args.ctx_names.items() if sd.endswith(nm)][0], tb)
        first = e.lines.get(tb, [("?", "?")])[0] if e else ("?", "?")
        print("  %9.1f %5d  %-18s %#x %s+%#x  (%s)" % (n / ops, len(tb_len[(sd, tb, tsym, toff)]), sd, tb, tsym[:70], toff,
                                                    short_loc(first[1])))

    for pattern in args.annotate:
        for name, e in (("kernel", elfs["kernel"]),) + tuple((args.ctx_names.get(c, "ctx%d" % c), e) for c, e in elfs.items() if c != "kernel"):
            counts = collections.Counter()
            for (c, a, tb), n in data.items():
                if elf_of(c, a) is e and (e is elfs["kernel"] or c in elfs and elfs[c] is e):
                    counts[a] += n
            for (start, size, sym) in e.syms:
                if pattern in sym and size and any(start <= a < start + size for a in counts):
                    print("\nannotated: %s %s (per op)" % (name, sym))
                    dis = sh(["objdump", "-d", "--no-show-raw-insn", "-M", "intel", "--start-address=%#x" % start,
                              "--stop-address=%#x" % (start + size), e.path])
                    for l in dis.splitlines():
                        m = re.match(r"\s*([0-9a-f]+):\s+(.*)", l)
                        if m:
                            a = int(m.group(1), 16)
                            n = counts.get(a, 0)
                            print("  %7s  %s" % ("%.1f" % (n / ops) if n else "", l.strip()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-run", action="store_true", help="report the last run's profile")
    p.add_argument("--profile", default="bench-prof", help="cargo profile (default bench-prof)")
    p.add_argument("--target", default="bench-ipc", help="make target (default bench-ipc)")
    p.add_argument("--out", default=os.path.join(ROOT, "target/icount/profile-ipc.txt"))
    p.add_argument("--log", default=os.path.join(ROOT, "target/scenarios/bench-ipc/icount.log"))
    p.add_argument("--regions", default="1,2", help="regions to report (1-based, default 1,2)")
    p.add_argument("--ctx-elf", default="0=ping,1=pong", help="context=program (default 0=ping,1=pong)")
    p.add_argument("--limit", type=int, default=40, help="rows per table")
    p.add_argument("--min-tree", type=float, default=1.0, help="smallest per-op figure in the call tree")
    p.add_argument("--depth", type=int, default=14, help="depth of the call tree")
    p.add_argument("--lines", type=int, default=60, help="rows of the source-line table")
    p.add_argument("--blocks", type=int, default=80, help="rows of the basic-block table")
    p.add_argument("--annotate", action="append", default=[], help="disassemble symbols containing this, with counts")
    p.add_argument("--save", help="also write the report to this file")
    args = p.parse_args()
    if not args.no_run:
        run(args.profile, args.out, args.target)
    if args.save:
        sys.stdout = Tee(args.save)
    bindir = os.path.join(ROOT, "target/x86_64-unknown-none", args.profile)
    elfs = {"kernel": Elf(os.path.join(bindir, "capos-kernel"))}
    args.ctx_names = {}
    for spec in args.ctx_elf.split(","):
        c, prog = spec.split("=")
        elfs[int(c)] = Elf(os.path.join(bindir, prog))
        args.ctx_names[int(c)] = prog
    regions, totals = load(args.out)
    labs = labels(args.log)
    for k in [int(x) for x in args.regions.split(",")]:
        if k not in totals:
            print("no region %d in %s" % (k, args.out))
            continue
        label, ops = labs[k - 1] if k - 1 < len(labs) else ("region %d" % k, 1)
        report(args, k, label, ops, regions.get(k, {}), totals[k], elfs)


class Tee:
    def __init__(self, path):
        self.f = open(path, "w")
        self.o = sys.__stdout__

    def write(self, s):
        self.f.write(s)
        self.o.write(s)

    def flush(self):
        self.f.flush()
        self.o.flush()


if __name__ == "__main__":
    main()
