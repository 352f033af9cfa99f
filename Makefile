# capOS: `make run` boots the default system, `make test` runs every test.
# Both first run tools/setup.sh, which installs what is missing. See README.md.

SHELL := /bin/bash

# Machine and run settings (see README.md). Any of them can be given on the
# command line, e.g. `make run-smoke QEMU_MACHINE=pc QEMU_MEM=6G QEMU_SMP=4`.
QEMU_MACHINE     ?= q35
QEMU_MEM         ?= 256M
QEMU_SMP         ?= 1
QEMU_CPU         ?= max
QEMU_EXTRA       ?=
SCENARIO_TIMEOUT ?= 90
CMDLINE          ?=
LIMINE_DIR       ?=
KERNEL_PROFILE   ?= dev
DIAG_SCRIPT      ?= tools/diag.script
# The boot manifest `make run` compiles into /boot/manifest.
MANIFEST         ?= demos/default.manifest
# make fuzz: seconds of AFL++ per target, and which targets (default: all).
FUZZ_SECONDS     ?= 60
FUZZ_TARGETS     ?=
# Block-device scenarios: bring your own image (it is copied, never
# modified), or size the generated one; BLK_READ_MIB=0 hashes the whole disk.
BLK_IMAGE        ?=
BLK_IMAGE_SIZE   ?= 16M
BLK_READ_MIB     ?= 0
# Cloud disk (docs/cloud.md): its size in GiB; the disk run-disk boots
# (default target/disk.raw, written in place). DISK_BUS (nvme, virtio or
# scsi) is the bus run-disk attaches it on (default nvme), and the bus of
# storage-writable's first phase and storage-writable-recovery's power
# cuts (default nvme) and storage-hostile's disk (default virtio).
CLOUD_DISK_GIB   ?= 10
DISK             ?=
DISK_BUS         ?=
# The GCE harness: a file setting CLOUDBOOT_* (tools/cloudboot/README.md)
# and the gcloud CLI to drive.
CLOUDBOOT_CONFIG ?=
GCLOUD           ?= gcloud
# Benchmarks (bench-*): the cargo profile they build with, and whether
# they run under -icount shift=0 (on|off). See docs/benchmarks.md.
BENCH_PROFILE    ?= bench-opt
BENCH_ICOUNT     ?= on
# make bench-check: the budget file (default tools/bench-budgets.txt) and
# how many benchmarks run at once (default: one per core).
BENCH_BUDGETS    ?=
BENCH_JOBS       ?=
# Scenarios at once when several are run (make test): default one per core;
# JOBS=1 runs them one after another with the output streamed.
# docs/testing.md.
JOBS             ?=
# Storage scenarios (README.md "Storage scenarios"): your own images, each
# copied to target/scenarios/ first (never written) unless
# STORAGE_IN_PLACE=1. Empty: small images built by mkstore-image.
RO_IMAGE         ?=
WF_IMAGE         ?=
STORE_IMAGE      ?=
HOSTILE_IMAGE    ?=
RECOVERY_IMAGE   ?=
STORAGE_IN_PLACE ?=
# make run-shell: the lines typed into the shell (default tools/shell.script).
# make run and make run-shell: your own disks for /data (DATA_IMAGE,
# CAPOSWF1 or co-located), the store (STORE_IMAGE, CAPOSST1) and /fat
# (FAT_IMAGE, a FAT disk), each used in place, so what the shell wrote
# stays there (default: target/disks/ for make run, fresh ones for
# run-shell). FAT_IMAGE and STORE_IMAGE are also the images of
# run-storage-fat-read and run-storage-persist (copied there).
SHELL_SCRIPT     ?=
DATA_IMAGE       ?=
FAT_IMAGE        ?=
# make run and make run-http: the host port (on 127.0.0.1 only) forwarded
# to the web server's port 80 (default 8080).
HTTP_PORT        ?=
export QEMU_MACHINE QEMU_MEM QEMU_SMP QEMU_CPU QEMU_EXTRA SCENARIO_TIMEOUT CMDLINE LIMINE_DIR KERNEL_PROFILE DIAG_SCRIPT MANIFEST FUZZ_SECONDS FUZZ_TARGETS \
       BLK_IMAGE BLK_IMAGE_SIZE BLK_READ_MIB CLOUD_DISK_GIB DISK DISK_BUS CLOUDBOOT_CONFIG GCLOUD BENCH_PROFILE BENCH_ICOUNT BENCH_JOBS JOBS \
       RO_IMAGE WF_IMAGE STORE_IMAGE HOSTILE_IMAGE RECOVERY_IMAGE STORAGE_IN_PLACE SHELL_SCRIPT DATA_IMAGE FAT_IMAGE HTTP_PORT

CARGO  ?= cargo
RUNNER := $(CARGO) run --quiet -p capos-run --
# The runner binary cargo leaves (built by `cargo run -p capos-run` or by
# the host tests' build).
RUNNER_BIN := $(or $(CARGO_TARGET_DIR),target)/debug/capos-run

# Host-side crates whose unit tests `make test` runs.
HOST_PACKAGES := -p capos-bootproto -p capos-kcore -p capos-run -p capos-storage -p mkstore-image -p capos-serve -p capos-text \
                 -p capos-abi -p mkmanifest -p capos-demo-shell -p capos-demo-storage-fs-service -p capos-demo-store-service -p capos-demo-http-files \
                 -p capos-demo-net-service \
                 -p capos-fuzz
# QEMU scenarios `make test` runs, JOBS at a time, their output printed in
# this order. The last three run alone, after the others (docs/testing.md),
# so they come last here and the output is not held back behind them.
SCENARIOS := smoke smoke-matrix fault loader-errors boot-menu diag prompt-robustness acpi pci msix \
             blk-virtio blk-nvme blk-multi blk-scsi net-nic net-service net hello ipc cap-faults process-lifetime default-system shell \
             storage-readonly storage-writable storage-persist storage-hostile \
             storage-fat-read cloud-provider-fat-read-over-nvme block-cap storage-services storage-services-hostile \
             storage-services-churn storage-services-recovery storage-writable-recovery \
             smp process-lifetime-smp4 storage-services-smp4

.PHONY: all setup run debug test test-host test-host-build test-host-run test-nostd test-prebuild test-scenarios list-scenarios fuzz fuzz-smoke \
        run-smoke run-smoke-matrix run-fault run-loader-errors run-diag \
        run-prompt-robustness run-acpi run-pci run-msix run-blk-virtio run-blk-nvme \
        run-boot-menu run-blk-multi run-blk-scsi run-net-nic run-net-service run-net run-http bench-blk run-hello run-ipc run-cap-faults run-process-lifetime run-shell bench-ipc bench-storage bench-linux \
        bench-boot bench-check bench-net run-default-system clean \
        image capos-cloudboot-image run-disk run-cloud-disk cloudboot-check cloudboot-repro-check \
        cloudboot-test cloudboot-fixture-check test-cloud \
        run-storage-readonly run-storage-writable run-storage-writable-recovery run-storage-services-recovery run-storage-persist run-storage-hostile \
        run-storage-fat-read run-cloud-provider-fat-read-over-nvme run-block-cap run-storage-services \
        run-storage-services-hostile run-storage-services-churn

all: test

setup:
	@tools/setup.sh

## Boot the default system (limine.conf) with the serial console on this
## terminal, on 2 CPUs (as the smallest cloud shapes have) unless QEMU_SMP
## is given. DATA_IMAGE=, STORE_IMAGE=, FAT_IMAGE=: your own disks, in place.
run: setup
	@QEMU_SMP=$(if $(filter command line environment,$(origin QEMU_SMP)),$(QEMU_SMP),2) $(RUNNER) run

## Like run, but QEMU waits for gdb on localhost:1234 (see docs/boot.md).
debug: setup
	@$(RUNNER) debug

## Everything: host unit tests (with the fuzz corpus and regressions
## replayed), a short AFL++ smoke of every fuzz target, then every QEMU
## scenario, then the cloud image checks (boot of the disk,
## reproducibility, harness fixtures), then the benchmarks against their
## budgets. Steps that need nothing of each other run side by side, JOBS
## at a time (default one per core), each one's output printed whole when
## it ends: the host tests beside the fuzz smoke and the build of what
## the scenarios boot, the cloud checks beside the benchmarks. The QEMU
## scenarios have the machine to themselves, but for the benchmarks'
## build, which runs beside them at idle priority (it takes only the CPU
## time they leave). docs/testing.md.
test: setup
	@$(MAKE) --no-print-directory test-host-build
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target RUNNER=$(RUNNER_BIN) test-host-run test-prebuild fuzz-smoke test-nostd
	@log=$(or $(CARGO_TARGET_DIR),target)/bench-prebuild.log; \
	$(IDLE_PRIORITY) $(RUNNER_BIN) bench-prebuild $(BENCH_BUDGETS) >$$log 2>&1 & bg=$$!; \
	$(MAKE) --no-print-directory test-scenarios; rc=$$?; \
	if wait $$bg; then echo "make test: the benchmarks' build beside the scenarios: done (log: $$log)"; \
	else echo "make test: the benchmarks' build beside the scenarios failed (bench-check builds again and says why; log: $$log)"; fi; \
	exit $$rc
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target cloudboot-repro-check bench-check run-cloud-disk cloudboot-fixture-check

TEST_JOBS = $(or $(JOBS),$(shell nproc))
# Idle scheduling (SCHED_IDLE: runs only on a core nothing else wants),
# else the lowest nice.
IDLE_PRIORITY := $(shell chrt --idle 0 true 2>/dev/null && echo chrt --idle 0 || echo nice -n 19)

test-cloud: run-cloud-disk cloudboot-repro-check cloudboot-fixture-check

test-host: test-host-run test-nostd

# A recipe marked `+` gets make's jobserver when make test runs steps side
# by side, so the cargo in it shares the JOBS slots instead of starting a
# compiler per core of its own (and cargo does not warn that it cannot
# reach the jobserver).
#
# The host tests are built without incremental compilation: from clean
# that is 101 s instead of 114 s on 2 cores, and cargo does not count the
# setting when it decides what is fresh, so a later incremental build
# (cargo test -p ..., make run) reuses what this one made.
HOST_TEST := CARGO_INCREMENTAL=0 $(CARGO) test $(HOST_PACKAGES)

test-host-build:
	$(HOST_TEST) --no-run

test-host-run:
	+$(HOST_TEST)

# The no_std crates build for the kernel's target (their host tests do
# not show that they still do).
test-nostd:
	+$(CARGO) build -p capos-storage -p capos-abi -p capos-serve -p capos-text --target x86_64-unknown-none

# What test-scenarios boots, built ahead (beside the host tests in make
# test, which runs the runner binary the host tests' build left: cargo
# test, running them, holds the lock `cargo run` would wait on).
test-prebuild:
	+@$(RUNNER) prebuild $(SCENARIOS)

test-scenarios:
	@$(RUNNER) test $(SCENARIOS)

## Coverage-guided fuzzing (AFL++ through cargo-afl, stable Rust): each
## target for FUZZ_SECONDS; crashes are copied to fuzz/regressions/.
## docs/fuzzing.md.
fuzz: setup
	@tools/fuzz.sh

## A few seconds of AFL++ per target: every target must execute inputs and
## none may crash.
fuzz-smoke:
	+@tools/fuzz.sh --smoke

list-scenarios:
	@$(RUNNER) list

run-smoke: setup
	@$(RUNNER) test smoke

run-smoke-matrix: setup
	@$(RUNNER) test smoke-matrix

run-fault: setup
	@$(RUNNER) test fault

run-loader-errors: setup
	@$(RUNNER) test loader-errors

## capos-boot's menu: a typed choice, and the timeout.
run-boot-menu: setup
	@$(RUNNER) test boot-menu

## The serial diagnostics prompt with the commands in DIAG_SCRIPT.
run-diag: setup
	@$(RUNNER) test diag

run-prompt-robustness: setup
	@$(RUNNER) test prompt-robustness

run-acpi: setup
	@$(RUNNER) test acpi

run-pci: setup
	@$(RUNNER) test pci

run-msix: setup
	@$(RUNNER) test msix

## Benchmark (not part of make test): executed instructions per block read
## (NVMe and virtio-blk, trait and raw, irq and polled), counted by the
## QEMU plugin in tools/icount.
bench-blk: setup
	@$(RUNNER) test bench-blk

## What `make run` boots, checked: userspace runs, then the prompt answers.
run-default-system: setup
	@$(RUNNER) test default-system

## The operator's shell (demos/shell) over a co-located NVMe disk: types
## SHELL_SCRIPT (default tools/shell.script) at its prompt, checks the
## output, then `exit` and `halt`. DATA_IMAGE=, STORE_IMAGE=, FAT_IMAGE=:
## your own disks, in place.
run-shell: setup
	@$(RUNNER) test shell

## The storage services (demos/storage-services.manifest): storage-fs-service
## and store-service over Block capabilities, driven by services-check; 200
## kills mid-workload, restarts, frames counted; then a reboot reads it back.
run-storage-services: setup
	@$(RUNNER) test storage-services

## File.read through storage-fs-service with a bulk buffer the service
## cannot write (read-only page, unmapped address, the caller's IPC receive
## area) fails with badAddress at once, as on the kernel's own File; a
## second client is served throughout (demos/storage-services-hostile.manifest).
run-storage-services-hostile: setup
	@$(RUNNER) test storage-services-hostile

## storage-fs-service frees objects nobody closes: 100,000 create/write/
## drop/remove cycles in one session, five lives of a restarted client each
## holding 1,000 files, none live at the end (demos/storage-services-churn.manifest).
run-storage-services-churn: setup
	@$(RUNNER) test storage-services-churn

## Userspace: one process with a Console.
run-hello: setup
	@$(RUNNER) test hello

## Userspace IPC: ping calls pong over an endpoint and the kernel's Ping.
run-ipc: setup
	@$(RUNNER) test ipc

## Supervision: a server killed or crashed 200 times keeps serving through
## the same capability without leaking a frame; PeerGone rules; restart budgets.
## Every CPU at work (q35 and pc, 2, 4 and 8 CPUs): ping-pong pairs and the
## storage services under kills, checked; TLB shootdown seen to work and to
## be needed (docs/smp.md).
run-smp: setup
	@$(RUNNER) test smp

run-process-lifetime: setup
	@$(RUNNER) test process-lifetime

## A hostile process: every bad call refused, its fault ends only it.
run-cap-faults: setup
	@$(RUNNER) test cap-faults

## Benchmark (not part of make test): executed instructions per capability
## call (kernel null call, endpoint round trip, echo), counted by the plugin.
bench-ipc: setup
	@$(RUNNER) test bench-ipc

## Benchmark (not part of make test): executed instructions per File.read
## and File.write (4 KiB, 128 KiB; also per MiB) on CAPOSWF1 over NVMe and per
## Store put/get, through kernel capabilities; beside bench-blk's raw driver
## figure (target/bench/blk.txt) and Linux's O_DIRECT (target/bench/linux.txt).
bench-storage: setup
	@$(RUNNER) test bench-storage

## Benchmark (not part of make test): executed instructions from kernel
## entry to the first user process, to the default system's shell prompt
## and to its first idle (what `make run` boots), from milestone markers.
bench-boot: setup
	@$(RUNNER) test bench-boot

## Benchmark (not part of make test): two checked ping-pong pairs on 1 and
## on 2 CPUs; their throughput (TSC cycles) and the 2-CPU / 1-CPU ratio.
bench-smp: setup
	@$(RUNNER) test bench-smp

## The benchmarks the budget file names (one per core at a time) against
## tools/bench-budgets.txt (BENCH_BUDGETS): a figure more than 0.5% over
## its budget fails. docs/benchmarks.md.
bench-check: setup
	+@$(RUNNER) bench-check $(BENCH_BUDGETS)

## Benchmark (not part of make test): Debian's Linux 6.1 in the same QEMU
## with the same counter; stores target/bench/linux.txt for bench-ipc/blk.
bench-linux: setup
	@$(RUNNER) test bench-linux

## Benchmark: executed instructions per HTTP GET of a 1 MiB and a 100 B
## file from the host, busybox httpd on the same Linux beside capOS's
## http-files through net-service, and the ratio. docs/benchmarks.md.
bench-net: setup
	@$(RUNNER) test bench-net

run-blk-virtio: setup
	@$(RUNNER) test blk-virtio

run-blk-nvme: setup
	@$(RUNNER) test blk-nvme

run-blk-multi: setup
	@$(RUNNER) test blk-multi

## virtio-scsi: two disks on two targets (hash, write, flush, checked on
## the host), a sparse 3 TiB disk (READ CAPACITY(16), WRITE(16)), and a
## legacy-only device left alone. BLK_IMAGE / BLK_IMAGE_SIZE as blk-virtio.
run-blk-scsi: setup
	@$(RUNNER) test blk-scsi

## virtio-net behind the Nic capability (docs/network.md): demos/net-check
## on QEMU's user network (restrict=on) exchanges ARP with the gateway and
## probes the refusals, on a modern card (q35) and a transitional one (pc);
## a manifest granting the card twice is refused at boot.
run-net-nic: setup
	@$(RUNNER) test net-nic

## TCP and UDP as capabilities (docs/network.md): demos/net-service runs
## smoltcp over the Nic and serves demos/net-echo, granted with terms; the
## runner checks echo, 64 connections, UDP and a dropped stream closing
## from the host through 127.0.0.1-only forwards.
run-net-service: setup
	@$(RUNNER) test net-service

## The default system with its network (docs/network.md,
## docs/http-files.md): the shell writes files into /data, the host
## fetches them over HTTP (sha256, listings, ranges, 64 connections,
## hostile requests) through a 127.0.0.1-only forward on a free port; the
## data image must be unchanged by the web server.
run-net: setup
	@$(RUNNER) test net

## The default system, served over HTTP until it is killed (for scripts):
## no console input; /data (DATA_IMAGE= to serve your own, in place) at
## http://127.0.0.1:$(HTTP_PORT)/ (default 8080).
run-http: setup
	@$(RUNNER) serve

## Storage (README.md "Storage scenarios"): demos/storage-check against the
## kernel's Directory/File/Store, judged against mkstore-image's extract.
## Read-only: RO_IMAGE over virtio-blk and NVMe, plus a writable disk
## behind fs-ro/store-ro and a read-only mount; every mutation refused.
run-storage-readonly: setup
	@$(RUNNER) test storage-readonly

## Writable: WF_IMAGE, phase 1, reboot, phase 2; fsck clean, walk == extract.
run-storage-writable: setup
	@$(RUNNER) test storage-writable

## Crash consistency: 20 forced power-offs (SIGKILL) during a write workload
## on RECOVERY_IMAGE (or WF_IMAGE); no synced byte lost, nothing half-written.
run-storage-writable-recovery: setup
	@$(RUNNER) test storage-writable-recovery

## The same power cuts (20, SIGKILL) through storage-fs-service and
## store-service, as `make run` serves /data and the store: fsck of both
## images clean, nothing synced or put lost, nothing half-written.
run-storage-services-recovery: setup
	@$(RUNNER) test storage-services-recovery

## Store: STORE_IMAGE (CAPOSST1 or co-located), compaction, reboot, values intact.
run-storage-persist: setup
	@$(RUNNER) test storage-persist

## Hostile requests on HOSTILE_IMAGE; a second client still works; no panic.
run-storage-hostile: setup
	@$(RUNNER) test storage-hostile

## Read-only FAT: FAT_IMAGE (default from tools/mkstorage-fat-read-image)
## over virtio-blk; the walk equals mtools' view, times within 2 s.
run-storage-fat-read: setup
	@$(RUNNER) test storage-fat-read

## The same FAT reading over NVMe, as a cloud provider attaches disks.
run-cloud-provider-fat-read-over-nvme: setup
	@$(RUNNER) test cloud-provider-fat-read-over-nvme

## Block capability: demos/block-check over a raw mount of a GPT partition
## (by number, then by type GUID); the image holds its pattern at partition
## start + LBA and nothing else changed; block-ro reads but cannot write.
run-block-cap: setup
	@$(RUNNER) test block-cap

## The GPT disk (ESP = what `make run` boots, partition 2 = capOS data).
image: setup
	@$(RUNNER) disk-image target/capos.img

## target/disk.raw, target/capos-disk.tar.gz (for Compute Engine) and
## target/disk.raw.provenance.json; the host check runs on the result.
capos-cloudboot-image: setup
	@$(RUNNER) cloudboot-image target

## Boot DISK (default target/disk.raw, in place) under OVMF over DISK_BUS.
run-disk: setup
	@$(RUNNER) run-disk

## Scenario: build the cloud disk, check it, boot it over NVMe and virtio-blk.
run-cloud-disk: setup
	+@$(RUNNER) disk-test

## The host check on DISK (default target/disk.raw) and its tarball.
cloudboot-check: setup
	@$(RUNNER) check-disk $(if $(DISK),$(DISK),target/disk.raw) $(if $(DISK),,target/capos-disk.tar.gz)

## Two builds of the cloud image must give identical bytes.
cloudboot-repro-check: setup
	+@tools/cloudboot/repro-check.sh

## The live Compute Engine run (operator only; tools/cloudboot/README.md).
cloudboot-test: capos-cloudboot-image
	@tools/cloudboot/run-test.sh

## The harness against a recording stub gcloud, one case per failure mode.
cloudboot-fixture-check:
	@tools/cloudboot/fixtures/check.sh

clean:
	$(CARGO) clean
