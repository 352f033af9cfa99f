# capOS capability contract.
#
# Every service in capOS, in the kernel or in a userspace process, is reached
# the same way: a capnp call on a capability. This file is that contract. The
# Rust code is generated from it by `abi/build.rs` (crate `capos-abi`), which
# also holds the syscall numbers, error codes, handle encoding and message
# limits that frame these messages; docs/capabilities.md explains the whole.
#
# Rules that keep the contract stable:
# - The file id, the explicit ids on interfaces and envelope structs, and every
#   method ordinal are fixed. `Directory`, `File` and `Store` ordinals are listed
#   in DESIGN.md "Contracts that must not drift"; capos-abi has a test that
#   reads the compiled schema and fails if any ordinal or name moves.
# - Add fields and methods only at the end (new ordinals); never renumber.
#
# How capabilities travel inside messages: capnp-rpc is not used, so a message
# never holds a capnp capability pointer. A field of type `CapSlot` holds an
# index into the capability handles that travel beside the message (the
# IPC area's CAPS_OUT / CAPS_IN arrays, see capos_abi::ipc); those are
# handles in the table of the process reading it. The comment on each `CapSlot` field
# names the interface the capability implements.
#
# Method results: a method that can fail returns one of the `*Result` structs
# below, a union of `ok` (the value) and `err` (an `Error` a client can match
# on). Call-level failures (bad handle, wrong interface, unknown ordinal,
# malformed message) are not in the results: the syscall itself fails with a
# `capos_abi::SysError`.

@0xad8ce303fd1620fc;

using CapSlot = UInt32;
# Index into the enclosing envelope's `caps` list (see the header comment).

# ---------------------------------------------------------------------------
# Errors and results
# ---------------------------------------------------------------------------

enum ErrorCode {
  # What went wrong, for a client to match on. `message` in `Error` says more.
  unspecified @0;      # never sent on purpose; a zeroed Error reads as this
  notFound @1;         # no entry with that name / no value under that key
  alreadyExists @2;    # create/mkdir/rename onto an existing name
  notADirectory @3;    # sub/list on something that is a file
  isADirectory @4;     # open on something that is a directory
  notEmpty @5;         # remove of a directory that still has entries
  readOnly @6;         # a mutation on a read-only backer or a read-only wrapper
  invalidArgument @7;  # a malformed name, an impossible offset, a bad key ...
  noSpace @8;          # the backing store is full
  tooLarge @9;         # a file, key, value or request larger than allowed
  permissionDenied @10;# the capability does not allow this
  io @11;              # the device failed
  corrupted @12;       # on-disk structures failed validation
  unsupported @13;     # the backer does not implement this operation
  staleHandle @14;     # the object behind this capability was removed
  closed @15;          # File.close was called on this capability
  busy @16;            # the object is in use in a way that forbids this now
  unavailable @17;     # what serves this capability is absent (a manifest mount that failed
                       # at boot); `message` says why. Append new codes after this; never renumber.
  timedOut @18;        # a call that waits (accept, read, connect ...) ran out of its time
  connectionRefused @19; # the peer refused a connection (TCP reset to a SYN)
  connectionReset @20; # the peer (or the stack) aborted an established connection
}

struct Error {
  code @0 :ErrorCode;
  message @1 :Text;    # human-readable detail; never parsed by clients
}

struct VoidResult {
  union {
    ok @0 :Void;
    err @1 :Error;
  }
}

struct TextResult {
  union {
    ok @0 :Text;
    err @1 :Error;
  }
}

struct BoolResult {
  union {
    ok @0 :Bool;
    err @1 :Error;
  }
}

struct UInt64Result {
  union {
    ok @0 :UInt64;
    err @1 :Error;
  }
}

struct DataResult {
  union {
    ok @0 :Data;
    err @1 :Error;
  }
}

struct KeyPage {
  # One page of `Store.list`: keys in byte order, all after the `after` asked for.
  keys @0 :List(Data);
  more @1 :Bool;           # keys past the last one remain: ask again after it
}

struct KeysResult {
  union {
    ok @0 :KeyPage;
    err @1 :Error;
  }
}

struct CapResult {
  # A method that hands out a capability: `ok` indexes the capabilities returned beside it.
  union {
    ok @0 :CapSlot;
    err @1 :Error;
  }
}

# ---------------------------------------------------------------------------
# Filesystem and store
# ---------------------------------------------------------------------------

enum NodeKind {
  file @0;
  directory @1;
}

enum TimeProvenance {
  # Where a timestamp came from; a time is only as good as its source.
  unknown @0;              # the format stores no time; the value is zero
  wallClock @1;            # the kernel's wall clock (CAPOSWF1)
  rtc @2;                  # read directly from the real-time clock
  fatDirectoryEntry @3;    # a FAT directory entry: 2-second resolution for
                           # modification times, no time zone (read as UTC)
  fixedSourceDateEpoch @4; # SOURCE_DATE_EPOCH fixed at image build time
  hostFileMtime @5;        # a host file's mtime copied at image build time
}

struct Timestamp {
  unixNanos @0 :Int64;     # nanoseconds since 1970-01-01T00:00:00Z
  provenance @1 :TimeProvenance;
}

struct Stat {
  size @0 :UInt64;         # bytes (0 for a directory)
  kind @1 :NodeKind;
  created @2 :Timestamp;
  modified @3 :Timestamp;
}

struct StatResult {
  union {
    ok @0 :Stat;
    err @1 :Error;
  }
}

struct DirEntry {
  name @0 :Text;
  kind @1 :NodeKind;
  size @2 :UInt64;
}

struct ListResult {
  union {
    ok @0 :List(DirEntry); # sorted by name bytes
    err @1 :Error;
  }
}

struct RenameParams {
  from @0 :Text;           # an entry of the directory called
  to @1 :Text;             # its new name; must not exist yet
  target :union {
    sameDirectory @2 :Void;
    directory @3 :CapSlot; # a Directory of the same backer (index into the call's capabilities)
  }
}

interface Directory @0xff6c69db78cda102 {
  # A directory of some backer (CAPOSRO1, CAPOSWF1, FAT32, ...). A read-only
  # backer answers open/list/sub and fails mkdir/remove/create/rename with
  # `readOnly`. Names are single path components: no `/`, not `.` or `..`.

  open @0 (name :Text) -> CapResult;
  # The file `name`; `ok` indexes the returned capabilities and is a File.

  list @1 () -> ListResult;
  # Every entry with its kind and size.

  mkdir @2 (name :Text) -> VoidResult;
  # Create an empty directory `name`.

  remove @3 (name :Text) -> VoidResult;
  # Remove a file or an empty directory.

  sub @4 (name :Text) -> CapResult;
  # The subdirectory `name`; `ok` indexes the returned capabilities and is a Directory.

  create @5 (name :Text) -> CapResult;
  # A new empty file `name` (fails with alreadyExists if it exists);
  # `ok` indexes the returned capabilities and is a File.

  rename @6 RenameParams -> VoidResult;
  # Move `from` to `to`, in this directory or in `target.directory`.
}

interface File @0xe68e4df8b3faeb24 {
  # An open file. A read-only File (a read-only backer, or a read-only wrapper
  # around a writable one) answers read/stat/close and fails write/truncate/
  # sync with `readOnly`: attenuation is a wrapper object, not a rights bit.

  read @0 (offset :UInt64, length :UInt32) -> DataResult;
  # Up to `length` bytes at `offset` (fewer at the end; empty at or past it).
  # `length` above capos_abi::limits::MAX_IO_CHUNK_BYTES is `tooLarge`.

  write @1 (offset :UInt64, data :Data) -> UInt64Result;
  # Write all of `data` at `offset` (a gap is zero-filled); `ok` is the count.

  stat @2 () -> StatResult;
  # Size, kind, and created/modified times with their provenance.

  truncate @3 (size :UInt64) -> VoidResult;
  # Set the size; growing zero-fills.

  sync @4 () -> VoidResult;
  # Make everything written so far durable.

  close @5 () -> VoidResult;
  # Release the file; every later call on this capability fails with `closed`.
  # The handle itself stays in the table until cap_drop.
}

interface Store @0x8bbf15ab1dcec557 {
  # A persistent key/value store (CAPOSST1). Keys and values are bytes.

  put @0 (key :Data, value :Data) -> VoidResult;
  # Insert or replace.

  get @1 (key :Data) -> DataResult;
  # The value, or `notFound`.

  has @2 (key :Data) -> BoolResult;

  delete @3 (key :Data) -> BoolResult;
  # `ok` says whether the key existed.

  list @4 (after :Data, limit :UInt32) -> KeysResult;
  # Keys in byte order strictly after `after` (an empty `after` starts at the
  # first key), at most `limit` of them (0 or more than
  # capos_abi::serve::store::MAX_LIST_KEYS means that maximum). No values.
}

struct BlockInfo {
  blockSize @0 :UInt32;    # bytes per block
  blockCount @1 :UInt64;   # blocks the capability reaches (LBAs 0 .. blockCount)
  readOnly @2 :Bool;       # write and flush are refused with `readOnly`
}

struct BlockInfoResult {
  union {
    ok @0 :BlockInfo;
    err @1 :Error;
  }
}

interface BlockDevice @0xcabc0a588a537a84 {
  # A range of blocks of a device (a whole disk or one GPT partition), named
  # by a manifest `mount NAME: raw on DEVICE ...` and granted as
  # `kernel:block:NAME` (read-write) or `kernel:block-ro:NAME` (the
  # read-only wrapper). LBAs are relative to the range: 0 is its first
  # block. Data moves only through the call's bulk buffer
  # (capos_abi::ipc), never inline: at most
  # capos_abi::ipc::MAX_BULK_BYTES per call. A request past the range or
  # of no blocks is `invalidArgument`; more than the buffer or the bulk
  # limit is `tooLarge`; write and flush through a read-only capability
  # are `readOnly`; a device failure is `io`.

  info @0 () -> BlockInfoResult;

  read @1 (lba :UInt64, blocks :UInt32) -> DataResult;
  # `blocks` blocks from `lba` into the caller's writable bulk buffer;
  # `ok` is empty and the reply's bulk count is blocks * blockSize.

  write @2 (lba :UInt64) -> VoidResult;
  # The caller's readable bulk buffer (a non-zero multiple of blockSize)
  # written from `lba`. Not durable until a later flush returns ok.

  flush @3 () -> VoidResult;
  # Make every write that completed before this call durable.
}

# ---------------------------------------------------------------------------
# System services
# ---------------------------------------------------------------------------

interface Console @0x95c1f53114cfd349 {
  # The serial log. The kernel prefixes every line with the caller's process
  # name, so a process cannot impersonate another in the log.

  writeLine @0 (line :Text) -> VoidResult;
  # One line, without the newline. Longer than
  # capos_abi::limits::MAX_CONSOLE_LINE_BYTES is `tooLarge`; control
  # characters other than tab are replaced before printing.

  readLine @1 () -> TextResult;
  # The next line typed on the serial console, without its terminator.
  # The caller sleeps until the line is complete; while it waits it holds
  # the console's input (the kernel echoes and edits the line: backspace,
  # printable ASCII only, at most capos_abi::limits::MAX_CONSOLE_LINE_BYTES,
  # longer input on the line is dropped) and the kernel's diagnostics
  # prompt does not run. A second caller while one waits gets `busy`.
}

interface Endpoint @0xaeaeefc5c08a4c81 {
  # The kernel object behind a server's receive handle (from endpoint_create or
  # a manifest `export`). The server receives calls on it with
  # endpoint_receive and answers with endpoint_reply; this interface is what a
  # cap_call on that same handle reaches.

  mint @0 (badge :UInt64, notify :Bool) -> CapResult;
  # A new client capability for this endpoint. A call made through it is
  # delivered to the server with this badge, so a server tells its
  # clients (or sessions) apart. Manifest grants carry a kernel-chosen
  # badge; a server should mark its own with SERVER_MINTED (capos_abi::badge).
  # With `notify`, when the last copy of the new capability is gone
  # (dropped, or its holder ended) the server's receive loop gets a
  # no-senders notification for the badge (capos_abi::ipc::NO_SENDERS),
  # once per mint: a server that mints one badge N times frees the object
  # after N notifications.

  badgeOf @1 () -> UInt64Result;
  # (Servers normally need not ask: a received call carries the badge of
  # each transferred handle in the IPC area, capos_abi::ipc::BADGES_IN_OFFSET.)
  # The badge of the one capability this call transfers, if it is a client
  # capability of this same endpoint (`invalidArgument` otherwise: another
  # endpoint's, a kernel object, or not exactly one capability). A server
  # that hands out objects as badged capabilities of its endpoint uses it
  # to recognise one of its own objects passed back to it as an argument
  # (Directory.rename's target), without ever learning anything about a
  # capability that is not its own.
}

interface Ping @0xe963f547c7c28724 {
  # A small service for demos, tests and the IPC benchmark. It can be served by
  # a userspace process over an endpoint or by the kernel (kernel source
  # `ping`), so the two paths can be compared with the same client.

  ping @0 (value :UInt64) -> UInt64Result;
  # Answers `value` unchanged (the null call).

  echo @1 (data :Data) -> DataResult;
  # Answers `data` unchanged.

  session @2 () -> CapResult;
  # A fresh Ping capability served by the same server (a capability passed in
  # a result); `ok` indexes the capabilities returned beside the results.

  echoBulk @3 () -> UInt64Result;
  # Answers the call's bulk buffer unchanged through the same buffer (the
  # caller sets both bulk flags); `ok` is the byte count. The zero-copy
  # path's benchmark.
}

struct ProcessStatus {
  pid @0 :UInt32;          # the current (or last) instance's pid
  running @1 :Bool;        # false once it ended and was not restarted
  restarts @2 :UInt32;     # restarts in this boot
  freeFrames @3 :UInt64;   # frames free now (those the kernel heap holds and in-flight transfers hold count as free: they do not come and go with processes)
  heapFrames @4 :UInt64;   # of freeFrames, those the kernel heap holds: it grows on demand and keeps what it grew, so this shows growth apart from what processes left behind
}

struct ProcessStatusResult {
  union {
    ok @0 :ProcessStatus;
    err @1 :Error;
  }
}

interface Clock @0xc4b655d8a98c884d {
  # Kernel source `clock`: the wall clock (the RTC read at boot plus the
  # monotonic time since), for processes that stamp what they store.

  now @0 () -> UInt64Result;
  # Nanoseconds since 1970-01-01 00:00 UTC; `unsupported` when the kernel
  # found no wall clock.
}

interface ProcessControl @0xcdf0ff862f582772 {
  # Kernel source `control:NAME`: kill and observe the manifest process NAME
  # (docs/capabilities.md, "Supervision").

  kill @0 () -> VoidResult;
  # Kill it now, as if it faulted: its `restart:` policy applies, and calls
  # in flight to it fail with PeerGone. `notFound` when it is not running;
  # a process cannot kill itself this way (`invalidArgument`: exit instead).

  status @1 () -> ProcessStatusResult;
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

struct NicInfo {
  mac @0 :Data;            # the device's MAC address, 6 bytes
  mtu @1 :UInt16;          # the largest payload a frame carries (1500 unless the device offers less)
  linkUp @2 :Bool;         # the device's link state now (up when the device reports none)
  maxFrame @3 :UInt32;     # mtu + 14: the longest frame transmit takes and receive returns
}

struct NicInfoResult {
  union {
    ok @0 :NicInfo;
    err @1 :Error;
  }
}

struct NicCounters {
  # Since the device was bound. Drops are frames refused or discarded on
  # purpose (a holder's frame of a bad length, a malformed frame from the
  # device); errors are device failures.
  txFrames @0 :UInt64;
  txBytes @1 :UInt64;
  txDrops @2 :UInt64;
  txErrors @3 :UInt64;
  rxFrames @4 :UInt64;
  rxBytes @5 :UInt64;
  rxDrops @6 :UInt64;
  rxErrors @7 :UInt64;
}

struct NicCountersResult {
  union {
    ok @0 :NicCounters;
    err @1 :Error;
  }
}

struct NicReceiveResult {
  union {
    frame @0 :UInt32;      # a frame of this many bytes is at the start of the bulk buffer
    empty @1 :Void;        # nothing pending now; the call did not wait
    err @2 :Error;
  }
}

interface Nic @0x9587022b73d97181 {
  # Kernel source `nic:NAME` (net0, net1, ...): one network device, whole
  # Ethernet frames (no FCS) in and out. One process holds it (the manifest
  # grants it once). Frames travel only in the call's bulk buffer; no call
  # waits for the wire (docs/network.md).

  info @0 () -> NicInfoResult;

  transmit @1 () -> VoidResult;
  # The caller's readable bulk buffer is one frame, 14 to maxFrame bytes;
  # otherwise `invalidArgument` (counted as a transmit drop). Returns once
  # the frame is in the device's ring; `busy` when the ring is full (try
  # again), `io` when the device failed.

  receive @2 () -> NicReceiveResult;
  # The oldest frame the device received, into the caller's writable bulk
  # buffer (at least maxFrame bytes, else `invalidArgument`); `empty` at
  # once when none is pending. A caller that wants to wait polls.

  counters @3 () -> NicCountersResult;
}

struct NetAddress {
  # An IPv4 address and a port.
  ip @0 :Data;             # 4 bytes
  port @1 :UInt16;
}

struct NetAddressResult {
  union {
    ok @0 :NetAddress;
    err @1 :Error;
  }
}

struct NetworkInfo {
  address @0 :Data;        # our IPv4 address, 4 bytes; empty until configured
  prefixLength @1 :UInt8;  # of the address's network (24 for 10.0.2.15/24)
  gateway @2 :Data;        # 4 bytes; empty when there is none
  dhcp @3 :Bool;           # the address came from DHCP
  mac @4 :Data;            # the card's MAC, 6 bytes
  linkUp @5 :Bool;
  counters @6 :NicCounters;# the card's, as Nic.counters reports them
  openSockets @7 :UInt32;  # TCP listeners, TCP streams and UDP sockets open now (all holders)
}

struct NetworkInfoResult {
  union {
    ok @0 :NetworkInfo;
    err @1 :Error;
  }
}

struct UdpDatagram {
  length @0 :UInt32;       # bytes at the start of the caller's bulk buffer
  peer @1 :NetAddress;     # who sent it
}

struct UdpReceiveResult {
  union {
    ok @0 :UdpDatagram;
    err @1 :Error;
  }
}

interface Network @0xbd40210816ed2a86 {
  # Served by the network service (demos/net-service, smoltcp over a Nic;
  # docs/network.md). Sockets are handed out as capabilities of the same
  # service; dropping the last copy of one closes its socket. What a holder
  # may do comes from its manifest grant's terms (`terms listen=80 connect
  # udp`): anything else is `permissionDenied`. Waiting calls take a
  # `timeoutMs` (0 = no limit) and fail with `timedOut` when it passes.

  info @0 () -> NetworkInfoResult;
  # Our address (empty until DHCP configured it), the card, open sockets.

  listen @1 (port :UInt16, backlog :UInt16) -> CapResult;
  # A TcpListener on `port` (1..65535, allowed by the terms) holding up to
  # `backlog` connections not yet accepted (1..service bound).

  connect @2 (peer :NetAddress, timeoutMs :UInt32) -> CapResult;
  # A TcpStream to `peer`, once established (`connectionRefused`, `timedOut`).

  udpBind @3 (port :UInt16) -> CapResult;
  # A UdpSocket on `port` (0 = an ephemeral port).
}

interface TcpListener @0x8da0795cc14ed413 {
  accept @0 (timeoutMs :UInt32) -> CapResult;
  # The next established connection, a TcpStream; waits for one (0 = forever).

  local @1 () -> NetAddressResult;

  close @2 () -> VoidResult;
  # Stop listening; connections not yet accepted are reset. Later calls: `closed`.
}

interface TcpStream @0x9bcd496f352a831e {
  read @0 (timeoutMs :UInt32) -> UInt64Result;
  # Received bytes into the caller's writable bulk buffer (at most its size).
  # Waits for at least one byte, the end of the stream or the timeout;
  # `ok` 0 means the peer closed its side.

  write @1 (timeoutMs :UInt32) -> UInt64Result;
  # The caller's readable bulk buffer, queued for sending; waits until all of
  # it is queued (`ok` is the count, fewer only when the timeout passed;
  # `timedOut` when none was queued). At most
  # capos_abi::limits::MAX_NET_IO_BYTES per call (`tooLarge`).

  shutdown @2 () -> VoidResult;
  # Send FIN after what is queued; reading goes on.

  close @3 () -> VoidResult;
  # Close the connection now (FIN after what is queued); later calls: `closed`.

  peer @4 () -> NetAddressResult;
  local @5 () -> NetAddressResult;
}

interface UdpSocket @0xff494c31385ca06d {
  send @0 (peer :NetAddress) -> VoidResult;
  # The caller's readable bulk buffer is one datagram to `peer`.

  receive @1 (timeoutMs :UInt32) -> UdpReceiveResult;
  # The oldest datagram into the caller's writable bulk buffer (cut to its
  # size; `length` says how much was written); waits for one (0 = forever).

  local @2 () -> NetAddressResult;
  close @3 () -> VoidResult;
}

# ---------------------------------------------------------------------------
# The call envelope is not capnp: the interface id, method ordinal, badge,
# reply token and capability handles travel in registers and in the header
# of the process's IPC area (capos_abi::ipc, docs/capabilities.md). A message
# here is only a method's params or results.
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Process start and the boot manifest
# ---------------------------------------------------------------------------

struct NamedCap {
  name @0 :Text;           # the name from the manifest `grant` / `export`
  handle @1 :UInt64;       # a handle in the process's own table
}

struct StartInfo @0xa5257900c77b9c06 {
  # Mapped read-only into a new process; its address and length arrive in
  # registers at entry (see capos_abi's calling convention).
  name @0 :Text;               # the process's manifest name
  args @1 :List(Text);
  caps @2 :List(NamedCap);     # granted capabilities, in manifest order
  endpoints @3 :List(NamedCap);# receive handles of its exported endpoints
  grantTerms @4 :List(GrantTerms); # terms of the grants of its endpoints (a server's policy input)
}

struct GrantTerms {
  # What the manifest says a grant of one of this process's endpoints may
  # do (`grant net: process:net/network terms listen=80 connect`): calls
  # through it arrive with `badge`; the server decides what `terms` mean.
  endpoint @0 :Text;           # which of its exported endpoints
  badge @1 :UInt64;            # capos_abi::badge::manifest_grant of the grant
  terms @2 :Text;              # the words after `terms`, single-spaced
}

struct Manifest @0x8579300af96e2e0e {
  # The boot module the kernel reads to start the first processes. Built from
  # a text file by tools/mkmanifest; processes start in list order.
  version @0 :UInt32;          # capos_abi::manifest::MANIFEST_VERSION
  processes @1 :List(ProcessSpec);
  mounts @2 :List(MountSpec);  # what the kernel mounts before starting them
}

enum MountFormat {
  caposro1 @0;                 # read-only filesystem
  caposwf1 @1;                 # writable filesystem
  caposst1 @2;                 # key/value store
  colocated @3;                # CAPOSST1 store followed by a CAPOSWF1 filesystem
  fat @4;                      # FAT12/16/32, read-only
  raw @5;                      # no format: the blocks themselves, served as
                               # a BlockDevice (kernel sources block:NAME,
                               # block-ro:NAME); the mount only claims them
}

struct MountSpec {
  # `mount NAME: FORMAT on DEVICE [partition N | partition type GUID] [read-only]`
  name @0 :Text;               # what grants call it: fs:NAME, store:NAME, block:NAME
  format @1 :MountFormat;
  device @2 :Text;             # a block device name (nvme0n1, vblk0)
  partition :union {
    whole @3 :Void;            # the whole device
    number @4 :UInt32;         # GPT partition entry number (1-based)
    typeGuid @5 :Text;         # the one GPT partition of this type
  }
  readOnly @6 :Bool;           # mount read-only whatever the format allows
}

struct ProcessSpec {
  name @0 :Text;               # unique; prefixes its Console lines
  binary @1 :Text;             # boot module path, e.g. "/boot/hello"
  args @2 :List(Text);
  grants @3 :List(Grant);
  exports @4 :List(Text);      # endpoint names this process serves
  restartOnFailure @5 :Bool;   # `restart: on-failure`: start it again when it
                               # faults, is killed or exits non-zero
  maxRestarts @6 :UInt32;      # the restart budget for this boot (`max N`)
  pinned @7 :Bool;             # `cpu: N`: it runs on CPU `cpu` only
  cpu @8 :UInt8;               # the CPU index (0 = the boot CPU), when pinned
}

struct Grant {
  name @0 :Text;               # the name the process sees in StartInfo.caps
  source :union {
    kernel @1 :Text;           # a kernel source, e.g. "console", "store:NAME",
                               # "fs:NAME" (capos_abi::manifest::KernelSource)
    endpoint @2 :EndpointRef;  # another process's exported endpoint
  }
  readOnly @3 :Bool;           # endpoint grants: set the badge's read-only bit
  terms @4 :Text;              # endpoint grants: what the holder may do, for the
                               # server (StartInfo.grantTerms); empty = none given
}

struct EndpointRef {
  process @0 :Text;
  endpoint @1 :Text;
}
