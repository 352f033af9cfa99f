#!/usr/bin/env bash
# `make test`: every check, in two lanes so that neither of this
# machine's cores waits while the other works (docs/testing.md, "Running
# the tests" and "Measured").
#
#   host lane   what boots no QEMU: make test-host fuzz-smoke (the host
#               crates' unit tests and a few seconds of AFL++ per target,
#               in their own target directory, target/host, so cargo's
#               lock never makes them and the kernel builds wait for each
#               other), then cloudboot-repro-check (two builds of the
#               cloud image; the second in a clone with its own target
#               directory), cloudboot-fixture-check and the build of
#               what bench-check boots (capos-run bench-build); output to
#               target/test-lanes/host.log, printed whole when it ends.
#   main lane   make test-scenarios (the QEMU scenarios, JOBS at a time),
#               which waits for the host lane before the scenarios that
#               run alone (CAPOS_WAIT_FOR_PID), then run-cloud-disk and
#               bench-check.
#
# Exit status: 0 only when every part passed; the summary names each
# part's result and time.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=target/test-lanes
mkdir -p "$logs"
start=$SECONDS

(
    t0=$SECONDS
    rc=0
    # fuzz.sh builds in fuzz/afl/target, which it reads back: no
    # CARGO_TARGET_DIR for it, nor for the repro check's two builds.
    CARGO_TARGET_DIR="$PWD/target/host" make --no-print-directory test-host || rc=1
    make -k --no-print-directory fuzz-smoke cloudboot-repro-check cloudboot-fixture-check || rc=1
    # What bench-check boots, built now (in target/, whose lock the
    # scenarios no longer take: they were built before they started).
    cargo run --quiet -p capos-run -- bench-build || rc=1
    echo "== host lane: exit $rc after $((SECONDS - t0)) s"
    exit $rc
) >"$logs/host.log" 2>&1 &
host_pid=$!
echo "== host lane (unit tests, fuzz smoke) started beside the scenarios: pid $host_pid, log $logs/host.log"

declare -A took rc
part() {
    local name=$1 t0=$SECONDS
    shift
    "$@"
    rc[$name]=$?
    took[$name]=$((SECONDS - t0))
}

part test-scenarios env CAPOS_WAIT_FOR_PID=$host_pid make --no-print-directory test-scenarios
t0=$SECONDS
wait "$host_pid"
rc[host]=$?
echo "== host lane output (ended $((SECONDS - t0)) s after the scenarios):"
cat "$logs/host.log"
took[host]=$(sed -n 's/^== host lane: exit [0-9]* after \([0-9]*\) s$/\1/p' "$logs/host.log")
part run-cloud-disk make --no-print-directory run-cloud-disk
part bench-check make --no-print-directory bench-check

failed=0
echo "== make test: $((SECONDS - start)) s in all"
for p in host test-scenarios run-cloud-disk bench-check; do
    if [ "${rc[$p]}" -eq 0 ]; then verdict=passed; else verdict="FAILED (exit ${rc[$p]})"; failed=1; fi
    echo "   $p: $verdict in ${took[$p]:-?} s"
done
exit $failed
