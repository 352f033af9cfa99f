#!/usr/bin/env bash
# Boot the capOS cloud image on Compute Engine and watch its serial console.
#
#   tools/cloudboot/run-test.sh          (make cloudboot-test builds the image first)
#
# Configuration (environment, or a file named by CLOUDBOOT_CONFIG that sets
# them; tools/cloudboot/README.md):
#   CLOUDBOOT_PROJECT   the sandbox project; nothing is touched unless
#                       `gcloud config get-value project` prints exactly this
#   CLOUDBOOT_ZONE      zone of the temporary instance
#   CLOUDBOOT_BUCKET    bucket (name or gs://name) the tarball is staged in
#   CLOUDBOOT_SUBNET    subnet of the instance (it gets no public address)
#   CLOUDBOOT_LABEL     KEY=VALUE put on every instance and image this
#                       harness creates; the orphan sweep deletes what carries it
# Optional:
#   GCLOUD                   the gcloud CLI (default gcloud; tests put a stub here)
#   CLOUDBOOT_MACHINE_TYPE   default e2-small; its series (the part before the
#                            first -) must be one machine_family knows
#   CLOUDBOOT_BOOT_DISK_TYPE boot disk type for the instance (default: none
#                            for SCSI series, hyperdisk-balanced for NVMe series)
#   CLOUDBOOT_GVNIC          1: add GVNIC to the image's guest OS features on
#                            a SCSI series too (NVMe series always get it)
#   CLOUDBOOT_BUDGET_SECS    wall-clock budget for the verdict (default 300)
#   CLOUDBOOT_POLL_SECS      seconds between serial polls (default 10)
#   CLOUDBOOT_MAX_POLLS      stop after this many polls (default: budget only)
#   CLOUDBOOT_FINAL_FETCH_SECS  time limit of the last serial fetch in teardown (60)
#   CLOUDBOOT_TARBALL        default target/capos-disk.tar.gz
#   CLOUDBOOT_PROVENANCE     default target/disk.raw.provenance.json
#   CLOUDBOOT_EVIDENCE_DIR   default target/cloudboot-evidence
#   CLOUDBOOT_RUN_ID         default <unix time>-<4 hex digits>
#
# Verdict (from the serial log): PASS needs the kernel's landmark, the
# shell's prompt and bootcount's [PASS] line (the data partition mounted and
# a boot was counted and synced). A kernel line "userspace not started: ...",
# a kernel panic or a bootcount [FAIL] line fails the run at once, quoted.
#
# Exit status: 0 PASS and every resource was deleted; 1 FAIL (or a step
# failed); 2 refused (bad configuration, unknown machine type, project
# mismatch, missing image), nothing was touched;
# 3 a deletion could not be confirmed (look in the console!); 130/143
# interrupted (after teardown).
set -uo pipefail

# What the serial log must show (the strings the code prints; docs/cloud.md):
LANDMARK="capos kernel starting"                   # kernel/src/main.rs
USERSPACE_STARTED='userspace: [0-9]+ processes started' # kernel/src/main.rs (a regex)
NOT_STARTED="userspace not started: "               # kernel/src/main.rs, an ERROR line
SHELL_PROMPT='[shell] capos$'                       # demos/shell PROMPT "capos$ ", as the console prefixes it
BOOTCOUNT_PASS="[bootcount] [PASS] bootcount"       # demos/bootcount, after it synced
BOOTCOUNT_FAIL="[bootcount] [FAIL]"
PANIC="KERNEL PANIC"                                # kernel/src/diag/panic.rs
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

say() { printf 'cloudboot: %s\n' "$*"; }
refuse() { say "REFUSED: $*"; exit 2; }

if [ -n "${CLOUDBOOT_CONFIG:-}" ]; then
    [ -f "$CLOUDBOOT_CONFIG" ] || refuse "CLOUDBOOT_CONFIG=$CLOUDBOOT_CONFIG does not exist"
    # shellcheck disable=SC1090
    . "$CLOUDBOOT_CONFIG"
fi

read -r -a GC <<<"${GCLOUD:-gcloud}"
[ "${#GC[@]}" -gt 0 ] || refuse "GCLOUD is empty"
for v in CLOUDBOOT_PROJECT CLOUDBOOT_ZONE CLOUDBOOT_BUCKET CLOUDBOOT_SUBNET CLOUDBOOT_LABEL; do
    [ -n "${!v:-}" ] || refuse "$v is not set (see tools/cloudboot/README.md)"
done
PROJECT=$CLOUDBOOT_PROJECT
ZONE=$CLOUDBOOT_ZONE
BUCKET=${CLOUDBOOT_BUCKET#gs://}
BUCKET=${BUCKET%/}
SUBNET=$CLOUDBOOT_SUBNET
LABEL=$CLOUDBOOT_LABEL
[[ "$LABEL" =~ ^[a-z][a-z0-9_-]{0,62}=[a-z0-9_-]{0,63}$ ]] ||
    refuse "CLOUDBOOT_LABEL=$LABEL must be KEY=VALUE in lowercase letters, digits, - and _"
LABEL_KEY=${LABEL%%=*}
LABEL_VALUE=${LABEL#*=}
[[ "$BUCKET" =~ ^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$ ]] || refuse "CLOUDBOOT_BUCKET=$CLOUDBOOT_BUCKET is not a bucket name"
MACHINE_TYPE=${CLOUDBOOT_MACHINE_TYPE:-e2-small}

# Which family a machine type belongs to, by its series (the part before
# the first -). docs/cloud.md "Machine series" has the table and sources.
#   scsi  first and second generation: the boot disk is attached over
#         virtio-scsi, the NIC is virtio-net; gcloud's defaults are accepted
#   nvme  third generation and later: the boot disk is attached over NVMe,
#         the NIC is gVNIC only, so the image must carry GVNIC; boot from
#         Hyperdisk Balanced (N4, C4, C4D take nothing else; the others
#         accept it too)
# Anything else is refused before gcloud is called.
machine_family() {
    local t=$1
    case "$t" in
        *-metal) echo "a bare metal type (not a VM; its devices are not the ones docs/cloud.md lists, and it was never tried)"; return 1 ;;
    esac
    case "${t%%-*}" in
        e2 | n1 | f1 | g1 | n2 | n2d | c2 | c2d | t2d | m1 | m2) echo scsi ;;
        c3 | c3d | c4 | c4d | n4 | h3 | m3 | m4 | z3 | a3) echo nvme ;;
        t2a | c4a | n4a | a4x) echo "Arm (capOS is x86_64)"; return 1 ;;
        *) echo "unknown series '${t%%-*}'"; return 1 ;;
    esac
}
[[ "$MACHINE_TYPE" =~ ^[a-z][a-z0-9]*-[a-z0-9-]+$ ]] || refuse "CLOUDBOOT_MACHINE_TYPE=$MACHINE_TYPE is not a machine type name (like e2-small)"
if ! FAMILY=$(machine_family "$MACHINE_TYPE"); then
    refuse "machine type $MACHINE_TYPE: $FAMILY; the harness knows the series e2 n1 f1 g1 n2 n2d c2 c2d t2d m1 m2 (virtio-scsi) and c3 c3d c4 c4d n4 h3 m3 m4 z3 a3 (NVMe, gVNIC, Hyperdisk); see docs/cloud.md"
fi
FEATURES=UEFI_COMPATIBLE
BOOT_DISK_TYPE=""
case "$FAMILY" in
    scsi)
        [ "${CLOUDBOOT_GVNIC:-0}" = 1 ] && FEATURES=UEFI_COMPATIBLE,GVNIC
        ;;
    nvme)
        FEATURES=UEFI_COMPATIBLE,GVNIC
        BOOT_DISK_TYPE=hyperdisk-balanced
        ;;
esac
if [ -n "${CLOUDBOOT_BOOT_DISK_TYPE:-}" ]; then
    [[ "$CLOUDBOOT_BOOT_DISK_TYPE" =~ ^[a-z][a-z0-9-]*$ ]] || refuse "CLOUDBOOT_BOOT_DISK_TYPE=$CLOUDBOOT_BOOT_DISK_TYPE is not a disk type name (like hyperdisk-balanced)"
    BOOT_DISK_TYPE=$CLOUDBOOT_BOOT_DISK_TYPE
fi
BUDGET=${CLOUDBOOT_BUDGET_SECS:-300}
POLL=${CLOUDBOOT_POLL_SECS:-10}
MAX_POLLS=${CLOUDBOOT_MAX_POLLS:-0}
FINAL_FETCH_SECS=${CLOUDBOOT_FINAL_FETCH_SECS:-60}
for n in BUDGET POLL MAX_POLLS FINAL_FETCH_SECS; do
    [[ "${!n}" =~ ^[0-9]+$ ]] || refuse "$n=${!n} is not a whole number"
done
TARBALL=${CLOUDBOOT_TARBALL:-$ROOT/target/capos-disk.tar.gz}
PROVENANCE=${CLOUDBOOT_PROVENANCE:-$ROOT/target/disk.raw.provenance.json}
[ -f "$TARBALL" ] || refuse "$TARBALL does not exist (make capos-cloudboot-image)"
[ -f "$PROVENANCE" ] || refuse "$PROVENANCE does not exist (make capos-cloudboot-image)"
case "$TARBALL" in *.tar.gz) ;; *) refuse "$TARBALL: Compute Engine imports only *.tar.gz" ;; esac
RUN_ID=${CLOUDBOOT_RUN_ID:-$(date +%s)-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}
[[ "$RUN_ID" =~ ^[a-z0-9][a-z0-9-]{0,40}$ ]] || refuse "run id $RUN_ID must be lowercase letters, digits and -"
NAME="capos-cb-$RUN_ID"
PREFIX="capos-cloudboot/$LABEL_KEY-$LABEL_VALUE"
OBJECT="gs://$BUCKET/$PREFIX/run-$RUN_ID/$(basename "$TARBALL")"
EVIDENCE=${CLOUDBOOT_EVIDENCE_DIR:-$ROOT/target/cloudboot-evidence}/run-$RUN_ID

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cloudboot.XXXXXX") || refuse "cannot make a temporary directory"
trap 'rm -rf "$WORK"' EXIT
OUT=$WORK/out
ERR=$WORK/err
CHILD=""

# Run gcloud with stdout in $OUT and stderr in $ERR. It runs in the
# background and we wait for it, so INT/TERM reach our trap at once.
g() {
    if [ -n "${G_LIMIT:-}" ]; then
        timeout "$G_LIMIT" "${GC[@]}" "$@" >"$OUT" 2>"$ERR" </dev/null &
    else
        "${GC[@]}" "$@" >"$OUT" 2>"$ERR" </dev/null &
    fi
    CHILD=$!
    wait "$CHILD"
    local rc=$?
    CHILD=""
    return $rc
}

# --- Safety first: the active project must be the configured one. Nothing
# before this line calls gcloud; nothing after it runs unless they match.
if ! g config get-value project; then
    refuse "gcloud config get-value project failed: $(tr '\n' ' ' <"$ERR")"
fi
ACTIVE=$(tr -d ' \t\r\n' <"$OUT")
if [ "$ACTIVE" != "$PROJECT" ]; then
    refuse "the active gcloud project is '${ACTIVE:-(unset)}', not CLOUDBOOT_PROJECT '$PROJECT'; nothing was touched"
fi

mkdir -p "$EVIDENCE" || refuse "cannot create $EVIDENCE"
cp "$PROVENANCE" "$EVIDENCE/disk.raw.provenance.json"
say "run $RUN_ID in project $PROJECT zone $ZONE; evidence in $EVIDENCE"
say "machine type $MACHINE_TYPE ($FAMILY): guest OS features $FEATURES, boot disk type ${BOOT_DISK_TYPE:-(the default)}"

# What this run created (or tried to create): teardown deletes exactly these.
MADE_OBJECT=""
MADE_IMAGE=""
MADE_INSTANCE=""
TEARDOWN_FAILED=0
SERIAL_SAVED=0

# Is the resource gone? 0 absent, 1 still there, 2 cannot tell.
absent() {
    local kind=$1 name=$2
    case "$kind" in
        instance) g compute instances list --project="$PROJECT" --filter="name=$name" --format="value(name)" ;;
        image) g compute images list --project="$PROJECT" --no-standard-images --filter="name=$name" --format="value(name)" ;;
        object)
            if g storage ls "$name"; then return 1; fi
            grep -qiE "matched no objects|not found|No URLs matched" "$ERR" && return 0
            return 2
            ;;
    esac
    [ $? -eq 0 ] || return 2
    grep -qx -- "$name" "$OUT" && return 1
    return 0
}

# Delete one resource and report the result; a deletion that cannot be
# confirmed counts as failed.
delete() {
    local kind=$1 name=$2
    shift 2
    if g "$@"; then
        say "teardown: $kind $name: deleted"
        echo "$kind $name deleted" >>"$EVIDENCE/teardown.txt"
        return 0
    fi
    local why
    why=$(tr '\n' ' ' <"$ERR")
    absent "$kind" "$name"
    case $? in
        0)
            say "teardown: $kind $name: not there (delete said: $why)"
            echo "$kind $name absent" >>"$EVIDENCE/teardown.txt"
            ;;
        1)
            say "teardown: $kind $name: DELETE FAILED, it still exists: $why"
            echo "$kind $name FAILED still-exists" >>"$EVIDENCE/teardown.txt"
            TEARDOWN_FAILED=1
            ;;
        *)
            say "teardown: $kind $name: DELETE FAILED and its absence cannot be confirmed: $why"
            echo "$kind $name FAILED unconfirmed" >>"$EVIDENCE/teardown.txt"
            TEARDOWN_FAILED=1
            ;;
    esac
}

fetch_serial() {
    if g compute instances get-serial-port-output "$NAME" --project="$PROJECT" --zone="$ZONE" --port=1; then
        cp "$OUT" "$EVIDENCE/serial.log"
        SERIAL_SAVED=1
        return 0
    fi
    return 1
}

teardown() {
    local rc=$1
    trap - EXIT
    trap '' INT TERM
    if [ -n "$MADE_INSTANCE" ]; then
        # The serial log is saved before the instance goes (a hung fetch
        # must not hold up the deletions).
        G_LIMIT=$FINAL_FETCH_SECS fetch_serial || say "teardown: could not fetch the serial log one last time: $(tr '\n' ' ' <"$ERR")"
        delete instance "$NAME" compute instances delete "$NAME" --project="$PROJECT" --zone="$ZONE" --delete-disks=all --quiet
    fi
    if [ -n "$MADE_IMAGE" ]; then
        delete image "$NAME" compute images delete "$NAME" --project="$PROJECT" --quiet
    fi
    if [ -n "$MADE_OBJECT" ]; then
        delete object "$OBJECT" storage rm "$OBJECT" --project="$PROJECT"
    fi
    [ "$SERIAL_SAVED" -eq 1 ] && say "serial log: $EVIDENCE/serial.log"
    rm -rf "$WORK"
    if [ "$TEARDOWN_FAILED" -ne 0 ]; then
        say "FAIL: teardown could not confirm every deletion; check project $PROJECT by hand (label $LABEL)"
        exit 3
    fi
    exit "$rc"
}

on_signal() {
    say "interrupted by SIG$1; tearing down"
    [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null
    [ "$1" = INT ] && teardown 130
    teardown 143
}
trap 'teardown $?' EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

fail() {
    say "FAIL: $*"
    echo "FAIL $*" >"$EVIDENCE/result.txt"
    exit 1
}

# --- Orphan sweep: anything carrying the label is left over from an
# earlier run that could not tear down.
sweep_failed=0
if g compute instances list --project="$PROJECT" --filter="labels.$LABEL_KEY=$LABEL_VALUE" --format="value(name,zone.basename())"; then
    cp "$OUT" "$WORK/leftover-instances"
    while read -r iname izone; do
        [ -n "$iname" ] || continue
        izone=${izone##*/} # a zone URL, if the format gave one
        say "sweep: leftover instance $iname in ${izone:-$ZONE}"
        delete instance "$iname" compute instances delete "$iname" --project="$PROJECT" --zone="${izone:-$ZONE}" --delete-disks=all --quiet
    done <"$WORK/leftover-instances"
else
    say "sweep: cannot list instances: $(tr '\n' ' ' <"$ERR")"
    sweep_failed=1
fi
if g compute images list --project="$PROJECT" --no-standard-images --filter="labels.$LABEL_KEY=$LABEL_VALUE" --format="value(name)"; then
    cp "$OUT" "$WORK/leftover-images"
    while read -r iname; do
        [ -n "$iname" ] || continue
        say "sweep: leftover image $iname"
        delete image "$iname" compute images delete "$iname" --project="$PROJECT" --quiet
    done <"$WORK/leftover-images"
else
    say "sweep: cannot list images: $(tr '\n' ' ' <"$ERR")"
    sweep_failed=1
fi
if g storage ls "gs://$BUCKET/$PREFIX/**"; then
    # Object URLs only (not "gs://.../dir/:" headers or prefixes).
    grep -E '^gs://' "$OUT" | grep -vE '/$|:$' >"$WORK/leftover-objects" || true
    while read -r obj; do
        [ -n "$obj" ] || continue
        say "sweep: leftover object $obj"
        delete object "$obj" storage rm "$obj" --project="$PROJECT"
    done <"$WORK/leftover-objects"
elif ! grep -qiE "matched no objects|No URLs matched" "$ERR"; then
    say "sweep: cannot list gs://$BUCKET/$PREFIX/: $(tr '\n' ' ' <"$ERR")"
    sweep_failed=1
fi
[ "$sweep_failed" -eq 0 ] || fail "the orphan sweep could not list everything; not creating anything"
[ "$TEARDOWN_FAILED" -eq 0 ] || fail "the orphan sweep could not delete every leftover; not creating anything"

# --- Create: stage the tarball, import it as an image, boot an instance.
MADE_OBJECT=1
g storage cp "$TARBALL" "$OBJECT" --project="$PROJECT" || fail "upload to $OBJECT failed: $(tr '\n' ' ' <"$ERR")"
say "uploaded $OBJECT"

MADE_IMAGE=1
g compute images create "$NAME" --project="$PROJECT" --source-uri="$OBJECT" --guest-os-features="$FEATURES" \
    --labels="$LABEL" --description="capOS cloudboot run $RUN_ID" ||
    fail "image import failed: $(tr '\n' ' ' <"$ERR")"
say "image $NAME created"

disk_args=()
[ -n "$BOOT_DISK_TYPE" ] && disk_args=(--boot-disk-type="$BOOT_DISK_TYPE")
MADE_INSTANCE=1
g compute instances create "$NAME" --project="$PROJECT" --zone="$ZONE" --machine-type="$MACHINE_TYPE" \
    --image="$NAME" --image-project="$PROJECT" ${disk_args[@]+"${disk_args[@]}"} --subnet="$SUBNET" --no-address \
    --no-service-account --no-scopes --labels="$LABEL" ||
    fail "instance creation failed: $(tr '\n' ' ' <"$ERR")"
say "instance $NAME created (no public address, no service account, no scopes)"

# --- Watch: poll the serial console until the verdict or the budget ends.
has() { grep -qF -- "$1" "$EVIDENCE/serial.log" 2>/dev/null; }
# The first line holding $1, without carriage returns and the log prefix.
line_of() { grep -F -m1 -- "$1" "$EVIDENCE/serial.log" | tr -d '\r' | sed 's/^\[ *[0-9.]*\] [A-Z]* *//'; }
start=$SECONDS
polls=0
while :; do
    polls=$((polls + 1))
    if fetch_serial && has "$LANDMARK"; then
        if has "$NOT_STARTED"; then
            reason=$(line_of "$NOT_STARTED")
            reason=${reason#*"$NOT_STARTED"}
            fail "'$LANDMARK' appeared but userspace did not start: $reason"
        fi
        has "$PANIC" && fail "the kernel panicked: $(line_of "$PANIC")"
        has "$BOOTCOUNT_FAIL" && fail "bootcount failed: $(line_of "$BOOTCOUNT_FAIL")"
        if has "$SHELL_PROMPT" && has "$BOOTCOUNT_PASS"; then
            count=$(grep -oE '\[bootcount\] boot [0-9]+ of this disk' "$EVIDENCE/serial.log" | head -1)
            echo "PASS landmark, shell prompt and bootcount after $((SECONDS - start)) s, $polls polls${count:+: $count}" >"$EVIDENCE/result.txt"
            say "PASS: saw '$LANDMARK', the shell's prompt '$SHELL_PROMPT' and '$BOOTCOUNT_PASS'${count:+ ($count)} after $((SECONDS - start)) s ($polls polls)"
            exit 0
        fi
    fi
    if [ $((SECONDS - start)) -ge "$BUDGET" ] || { [ "$MAX_POLLS" -gt 0 ] && [ "$polls" -ge "$MAX_POLLS" ]; }; then
        within="within $BUDGET s ($polls polls)"
        [ "$SERIAL_SAVED" -eq 1 ] && has "$LANDMARK" || fail "'$LANDMARK' did not appear $within"
        grep -qE -- "$USERSPACE_STARTED" "$EVIDENCE/serial.log" ||
            fail "'$LANDMARK' appeared but no 'userspace: N processes started' line $within"
        missing=()
        has "$SHELL_PROMPT" || missing+=("the shell's prompt '$SHELL_PROMPT'")
        has "$BOOTCOUNT_PASS" || missing+=("bootcount's line '$BOOTCOUNT_PASS'")
        fail "'$LANDMARK' appeared and userspace started, but not $(printf '%s and ' "${missing[@]}" | sed 's/ and $//') $within"
    fi
    sleep "$POLL" &
    CHILD=$!
    wait "$CHILD"
    CHILD=""
done
