#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ (cargo-afl, stable Rust): run each
# target of fuzz/ for FUZZ_SECONDS, print executions and findings per
# target, and copy every crash into fuzz/regressions/TARGET/ (commit it:
# `cargo test -p capos-fuzz` replays it forever). docs/fuzzing.md.
#
#   tools/fuzz.sh            FUZZ_SECONDS per target (default 60)
#   tools/fuzz.sh --smoke    a few seconds per target; fails unless every
#                            target executed inputs and none crashed
#   FUZZ_TARGETS="gpt elf"   only these targets
#   JOBS=N                   targets fuzzed at once (default: one per core;
#                            each afl-fuzz is one process on one core)
#
# Exit status: 0 when no target crashed (and, with --smoke, every target
# ran), 1 otherwise, 2 when cargo-afl is missing (tools/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; fi
seconds=${FUZZ_SECONDS:-60}
if [ "$smoke" -eq 1 ]; then seconds=${FUZZ_SMOKE_SECONDS:-3}; fi
case "$seconds" in ''|*[!0-9]*|0) echo "fuzz: FUZZ_SECONDS must be a positive number of seconds, not '$seconds'" >&2; exit 2;; esac

if ! cargo afl --version >/dev/null 2>&1; then
    echo "fuzz: cargo-afl is not installed; run tools/setup.sh" >&2
    exit 2
fi

targets=${FUZZ_TARGETS:-$(ls fuzz/corpus)}
out=target/fuzz
mkdir -p "$out"

echo "fuzz: building the AFL++ binaries (fuzz/afl)"
(cd fuzz/afl && cargo afl build --release --quiet)
bins=fuzz/afl/target/release

# No UI (a log instead), no CPU binding (the machine is shared), no fatal
# complaint about the CPU governor or a core_pattern that pipes elsewhere.
export AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_FAST_CAL=1

stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$2"; }

jobs_max=${JOBS:-$(nproc)}
case "$jobs_max" in ''|*[!0-9]*|0) echo "fuzz: JOBS must be a positive number, not '$jobs_max'" >&2; exit 2;; esac

# Every target's afl-fuzz, JOBS at a time; each writes its exit status
# beside its log, and the results are read below in the targets' order.
fuzz_one() {
    local t=$1 dir="$out/$1"
    rm -rf "$dir" "$dir.rc"
    # -t: a 2 s limit per input (the image targets mount, walk and rewrite
    # a disk of up to 4 MiB); -m none: the targets bound their own memory.
    local rc=0
    nice -n 10 cargo afl fuzz -V "$seconds" -t 2000 -m none -i "fuzz/corpus/$t" -o "$dir" "$bins/$t" >"$dir.log" 2>&1 || rc=$?
    echo "$rc" >"$dir.rc"
}
for t in $targets; do
    [ -x "$bins/$t" ] || continue
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
    fuzz_one "$t" &
done
wait

total_execs=0
total_crashes=0
failed=()
printf '%-11s %12s %9s %7s %8s %6s\n' target executions execs/s corpus crashes hangs
for t in $targets; do
    if [ ! -x "$bins/$t" ]; then
        echo "fuzz: no AFL binary for target '$t' (fuzz/afl/src/bin/$t.rs)" >&2
        failed+=("$t: no binary")
        continue
    fi
    dir="$out/$t"
    if [ "$(cat "$dir.rc" 2>/dev/null)" != 0 ]; then
        echo "fuzz: afl-fuzz failed on $t; the end of $dir.log:" >&2
        tail -n 15 "$dir.log" >&2
        failed+=("$t: afl-fuzz failed")
        continue
    fi
    stats="$dir/default/fuzzer_stats"
    execs=$(stat execs_done "$stats")
    crashes=$(stat saved_crashes "$stats")
    printf '%-11s %12s %9s %7s %8s %6s\n' "$t" "$execs" "$(stat execs_per_sec "$stats")" \
        "$(stat corpus_count "$stats")" "$crashes" "$(stat saved_hangs "$stats")"
    total_execs=$((total_execs + execs))
    total_crashes=$((total_crashes + crashes))
    if [ "$execs" -le 0 ]; then failed+=("$t: no executions"); fi
    if [ "$crashes" -gt 0 ]; then
        mkdir -p "fuzz/regressions/$t"
        for f in "$dir"/default/crashes/id:*; do
            [ -f "$f" ] || continue
            keep="fuzz/regressions/$t/crash-$(sha256sum "$f" | cut -c1-16)"
            cp "$f" "$keep"
            echo "fuzz: $t crashed: saved $keep (reproduce: cargo run -q -p capos-fuzz --example replay -- $t $keep)" >&2
        done
        failed+=("$t: $crashes crashes")
    fi
done

echo "fuzz: $(wc -w <<<"$targets") targets, $total_execs executions, $total_crashes crashes (${seconds}s each, $jobs_max at a time; logs and queues in $out/)"
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
