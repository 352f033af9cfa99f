#!/usr/bin/env bash
# Install what building and testing capOS needs on a Debian machine.
# Idempotent and cheap when everything is present: it only checks, and
# installs what is missing. Called by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# mtools, dosfstools, gdisk, tar, gzip, util-linux (fallocate) and git build
# and check the cloud disk image (docs/cloud.md). gcc builds the icount QEMU
# plugin (tools/icount); gcc with libc6-dev links the Linux benchmark
# statically (tools/bench-linux); make bench-linux unpacks the Debian
# packages it downloads with dpkg-deb and tar. make and gcc also build
# AFL++ for cargo-afl (make fuzz, docs/fuzzing.md). swtpm gives the
# benchmark boots a TPM, so OVMF does not spend a minute of host time
# probing for one under -icount (tools/runner/src/machine/tpm.rs).
DEBIAN_PACKAGES=(qemu-system-x86 ovmf swtpm mtools dosfstools gdisk capnproto binutils python3 tar gzip util-linux git gcc libc6-dev make)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The toolchain pinned in rust-toolchain.toml, with the kernel and loader
# targets (these machines set RUSTUP_AUTO_INSTALL=0, so nothing is implicit).
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
targets=(x86_64-unknown-none x86_64-unknown-uefi)
if ! command -v rustup >/dev/null; then
    echo "setup: rustup is required (https://rustup.rs); it is not a Debian package here" >&2
    exit 1
fi
installed=$(rustup target list --installed --toolchain "$channel" 2>/dev/null || true)
need=0
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || need=1
done
if [ "$need" -eq 1 ]; then
    echo "setup: installing Rust $channel with targets ${targets[*]}"
    rustup toolchain install "$channel" --profile minimal --no-self-update \
        --target "${targets[0]}" --target "${targets[1]}"
fi

# cargo-afl (crates.io) for make fuzz and make test's fuzz smoke: coverage-
# guided fuzzing on stable Rust (docs/fuzzing.md). Installing it builds
# AFL++ from the source the crate ships (a few minutes, once); `cargo afl
# config --build` does that when it has not happened yet and refuses
# quickly when it has.
AFL_VERSION=0.18.2
if ! cargo afl --version 2>/dev/null | grep -q " $AFL_VERSION"; then
    echo "setup: installing cargo-afl $AFL_VERSION (builds AFL++; a few minutes)"
    cargo install cargo-afl --version "$AFL_VERSION" --locked --quiet
fi
if ! out=$(cargo afl config --build 2>&1); then
    if ! grep -q "already built" <<<"$out"; then
        echo "$out" >&2
        echo "setup: building AFL++ for cargo-afl failed" >&2
        exit 1
    fi
fi

# Disk space: a clean clone's `make test` writes about 5 GiB under target/
# and, at its peak, about 1.5 GiB of scratch disks under the temporary
# directory (the cloud disk check's tests, one of which allocates a whole
# 1 GiB disk). With less room the failures read "No space left on device"
# in whichever test ran out first; this line says it up front.
for d in . "${TMPDIR:-/tmp}"; do
    free_gib=$(df -Pk "$d" | awk 'NR == 2 { print int($4 / 1048576) }')
    if [ -n "$free_gib" ] && [ "$free_gib" -lt 8 ]; then
        echo "setup: warning: only $free_gib GiB free on the file system of $d; make test needs about 8 GiB there" >&2
    fi
done
