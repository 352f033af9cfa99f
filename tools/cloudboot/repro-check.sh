#!/usr/bin/env bash
# Reproducibility check: build the cloud image twice from this tree, into
# two directories, and require byte-identical disk.raw (and tarball, and
# provenance record). Exit 0 only when all three match.
#
# What it proves: the image assembly (FAT32, GPT, data partition, tar/gzip,
# timestamps) is deterministic for fixed inputs. The second build reuses
# cargo's artifacts, so it does not prove that rustc rebuilds the same
# binaries (see docs/cloud.md, "Reproducibility").
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNNER=(${CARGO:-cargo} run --quiet -p capos-run --)
out=target/cloudboot-repro
rm -rf "$out"
mkdir -p "$out/a" "$out/b"

for run in a b; do
    echo "repro-check: build $run -> $out/$run"
    if ! "${RUNNER[@]}" cloudboot-image "$out/$run" >"$out/$run.log" 2>&1; then
        cat "$out/$run.log"
        echo "repro-check: FAIL: build $run failed"
        exit 1
    fi
done

fail=0
for f in disk.raw capos-disk.tar.gz disk.raw.provenance.json; do
    # capos-run sha256 prints sha256sum's format and skips holes.
    a=$("${RUNNER[@]}" sha256 "$out/a/$f" | cut -d' ' -f1)
    b=$("${RUNNER[@]}" sha256 "$out/b/$f" | cut -d' ' -f1)
    if [ "$a" = "$b" ]; then
        echo "[PASS] $f: both builds sha256 $a"
    else
        echo "[FAIL] $f: build a sha256 $a, build b sha256 $b"
        fail=1
    fi
done
dirty=$(sed -n 's/.*"dirty": \([a-z]*\).*/\1/p' "$out/a/disk.raw.provenance.json" | head -1)
[ "$dirty" = "false" ] || echo "note: the tree was dirty; the provenance record says so"
if [ "$fail" -eq 0 ]; then echo "3 passed, 0 failed"; else echo "repro-check: FAIL"; exit 1; fi
