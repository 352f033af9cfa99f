#!/usr/bin/env bash
# Reproducibility check: build the cloud image from the committed tree in
# two checkouts at different paths, with different cargo homes, and require
# byte-identical disk.raw, tarball and provenance record. Exit 0 only when
# all three match.
#
# Build a: this tree, if it is clean (it then is the commit, and reuses the
# artifacts `make test` already built); else a clone of HEAD at
# target/cloudboot-repro/checkout-a. Build b: a clone of HEAD at
# target/cloudboot-repro/a-much-longer-directory-name, from nothing (its own
# target dir), with a cargo home of its own (a copy of this one's registry,
# offline). What it proves: no path of the build machine (checkout, cargo
# home) reaches the image's bytes, and rustc rebuilds the same binaries.
# Build b is driven by build a's runner binary (capos-run, a host tool:
# it runs cargo for everything the image holds, in build b's checkout and
# target dir, and writes the image); compiling the runner a second time
# would cost a minute of CPU and put none of its bytes in the image.
# Uncommitted changes are never checked: a clone has only the commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
CARGO=${CARGO:-cargo}
out=$root/target/cloudboot-repro

fail() { echo "repro-check: FAIL: $*"; exit 1; }

commit=$(git rev-parse HEAD) || fail "not a git checkout: the check builds the committed tree"
dirty=$(git status --porcelain --untracked-files=normal)

rm -rf "$out"
mkdir -p "$out"

# A clone of HEAD at $1 (the commit only: no uncommitted change).
clone() {
    git clone --quiet --no-hardlinks --no-checkout "$root" "$1"
    git -C "$1" checkout --quiet --detach "$commit"
}

# cargo's home for build b: this one's registry (index and downloaded
# crates) copied under another path, and its config if any; cargo runs
# offline there, so nothing is fetched and a missing crate is an error.
home_a=${CARGO_HOME:-$HOME/.cargo}
home_b=$out/cargo-home-b
[ -d "$home_a/registry/cache" ] || fail "$home_a/registry/cache does not exist: build the tree once (make capos-cloudboot-image) so cargo has the crates"
mkdir -p "$home_b/registry"
cp -r "$home_a/registry/index" "$home_a/registry/cache" "$home_b/registry/"
for f in config.toml config; do
    if [ -f "$home_a/$f" ]; then cp "$home_a/$f" "$home_b/"; fi
done

if [ -z "$dirty" ]; then
    dir_a=$root
    echo "repro-check: the tree is clean at $commit: build a in it, build b in a clone"
else
    # Not $out/a: that is where build a's image goes, and files there
    # would make its own checkout dirty.
    dir_a=$out/checkout-a
    echo "repro-check: the tree has uncommitted changes; they are not checked: both builds are clones of HEAD $commit"
    clone "$dir_a"
fi
dir_b=$out/a-much-longer-directory-name
clone "$dir_b"

# build NAME DIR RUNNER... :: [ENV...]: the image of DIR into $out/NAME,
# made by the command RUNNER (capos-run) run in DIR.
build() {
    local name=$1 dir=$2
    shift 2
    local runner=()
    while [ "$1" != "::" ]; do runner+=("$1"); shift; done
    shift
    echo "repro-check: build $name in $dir -> $out/$name"
    local t0=$SECONDS
    if ! (cd "$dir" && env "$@" "${runner[@]}" cloudboot-image "$out/$name") >"$out/$name.log" 2>&1; then
        tail -n 40 "$out/$name.log"
        fail "build $name failed (log: $out/$name.log)"
    fi
    echo "repro-check: build $name took $((SECONDS - t0)) s"
}
build a "$dir_a" "$CARGO" run --quiet -p capos-run -- :: CARGO_HOME="$home_a"
# The runner build a just ran (cargo puts it under its target dir).
target_a=${CARGO_TARGET_DIR:-target}
case $target_a in /*) ;; *) target_a=$dir_a/$target_a ;; esac
runner_a=$target_a/debug/capos-run
[ -x "$runner_a" ] || fail "build a left no runner at $runner_a"
build b "$dir_b" "$runner_a" :: -u CARGO_TARGET_DIR CARGO_HOME="$home_b" CARGO_NET_OFFLINE=true

failed=0
for f in disk.raw capos-disk.tar.gz disk.raw.provenance.json; do
    # capos-run sha256 prints sha256sum's format and skips holes.
    a=$("$CARGO" run --quiet -p capos-run -- sha256 "$out/a/$f" | cut -d' ' -f1)
    b=$("$CARGO" run --quiet -p capos-run -- sha256 "$out/b/$f" | cut -d' ' -f1)
    if [ "$a" = "$b" ]; then
        echo "[PASS] $f: both builds sha256 $a"
    else
        echo "[FAIL] $f: build a sha256 $a, build b sha256 $b"
        failed=$((failed + 1))
    fi
done
if [ "$failed" -ne 0 ]; then
    # Which files on the ESP differ (the provenance records list them).
    diff "$out/a/disk.raw.provenance.json" "$out/b/disk.raw.provenance.json" | grep '"path"' | sed 's/^/  /' || true
fi
echo "$((3 - failed)) passed, $failed failed"
[ "$failed" -eq 0 ] || fail "the two builds differ"
# The clones' target dirs are large; the images stay for inspection.
rm -rf "$out/a-much-longer-directory-name" "$out/checkout-a" "$home_b"
