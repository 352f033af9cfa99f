//! Starting userspace from the boot manifest.
//!
//! The manifest is a boot module (built by tools/mkmanifest) naming the
//! processes to start, their binaries (other boot modules), and the
//! capabilities each is granted: from a kernel source (`console`, `ping`,
//! a mounted `fs:`/`store:`; the table is `cap::sources`) or from another
//! process's exported endpoint. Everything is checked before anything
//! starts: a manifest naming a missing binary or an unknown source is
//! rejected with a log line, and no process runs. A mount that does not
//! open is not such an error: it is logged, and its grants are
//! capabilities that answer `unavailable` (crate::storage's rules).

use crate::mm::address_space::AddressSpace;
use super::supervisor::{self, GrantPlan, Plan};
use super::{with, Process};
use crate::mm::ipc_area::IpcArea;
use crate::boot_info::BootModule;
use crate::cap::endpoint::{Client, Endpoint, ServerHandle};
use crate::cap::{sources, Cap};
use crate::mm::{phys_to_virt, PAGE_SIZE};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::manifest::{GrantSource, KernelSource, Manifest};
use capos_abi::start::StartInfo;
use capos_abi::Handle;
use capos_kcore::cap_table::CapTable;
use capos_kcore::user_elf;

pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
pub const USER_STACK_PAGES: u64 = 16;
pub const START_INFO_ADDR: u64 = 0x0000_7ffe_0000_0000;
const KERNEL_STACK_PAGES: u64 = 8;

fn module_path(m: &BootModule) -> &str {
    m.path.strip_prefix("boot():").unwrap_or(&m.path)
}

fn module_bytes(m: &BootModule) -> &'static [u8] {
    // SAFETY: modules live in executable-and-modules memory, never reclaimed,
    // direct-mapped; the loader gave their exact size.
    unsafe { core::slice::from_raw_parts(phys_to_virt(m.phys) as *const u8, m.size as usize) }
}

/// The manifest module: a module whose path ends in `/manifest` or
/// `/manifest.bin`.
pub fn find_manifest(modules: &[BootModule]) -> Option<&BootModule> {
    modules.iter().find(|m| {
        let p = module_path(m);
        p.ends_with("/manifest") || p.ends_with("/manifest.bin")
    })
}

fn load_binary(name: &str, bytes: &[u8]) -> Result<(AddressSpace, u64), String> {
    let plan = user_elf::validate(bytes).map_err(|e| format!("process {}: binary rejected: {}", name, e))?;
    let mut space = AddressSpace::new().map_err(|e| format!("process {}: {:?}", name, e))?;
    for seg in &plan.segments {
        let first = seg.first_page();
        let pages = (seg.end_page() - first) / PAGE_SIZE;
        let frames = space
            .map_new(first, pages, seg.writable, seg.executable)
            .map_err(|e| format!("process {}: mapping segment at {:#x}: {:?}", name, seg.vaddr, e))?;
        let data = seg.file_bytes(bytes);
        // Copy file bytes page by page through the HHDM.
        let mut copied = 0usize;
        while copied < data.len() {
            let va = seg.vaddr + copied as u64;
            let page = ((va - first) / PAGE_SIZE) as usize;
            let off = (va % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(data.len() - copied);
            // SAFETY: frames[page] is a fresh frame of this space; off + n <= 4096.
            unsafe {
                core::ptr::copy_nonoverlapping(data[copied..].as_ptr(), (phys_to_virt(frames[page]) + off as u64) as *mut u8, n);
            }
            copied += n;
        }
    }
    space
        .map_new(USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE, USER_STACK_PAGES, true, false)
        .map_err(|e| format!("process {}: stack: {:?}", name, e))?;
    Ok((space, plan.entry))
}

fn map_start_info(space: &mut AddressSpace, bytes: &[u8]) -> Result<(), String> {
    let pages = (bytes.len() as u64).div_ceil(PAGE_SIZE).max(1);
    let frames = space.map_new(START_INFO_ADDR, pages, false, false).map_err(|e| format!("{:?}", e))?;
    for (i, chunk) in bytes.chunks(PAGE_SIZE as usize).enumerate() {
        // SAFETY: a fresh frame of this space.
        unsafe { core::ptr::copy_nonoverlapping(chunk.as_ptr(), phys_to_virt(frames[i]) as *mut u8, chunk.len()) };
    }
    Ok(())
}

/// Map the IPC area: header and send buffer writable, receive buffer
/// read-only (the kernel keeps it zeroed past the last message).
fn map_ipc_area(space: &mut AddressSpace, ipc: &IpcArea) -> Result<(), crate::mm::address_space::SpaceError> {
    use capos_abi::ipc::{AREA_PAGES, IPC_AREA_ADDR, RECV_OFFSET};
    let writable_pages = (RECV_OFFSET as u64) / PAGE_SIZE;
    space.map_frames(IPC_AREA_ADDR, ipc.phys(), writable_pages, true)?;
    space.map_frames(
        IPC_AREA_ADDR + RECV_OFFSET as u64,
        ipc.phys() + RECV_OFFSET as u64,
        AREA_PAGES as u64 - writable_pages,
        false,
    )
}

/// Build the first kernel-stack contents of a new process: a trap frame
/// that `iretq`s to the entry point, under a context-switch frame that
/// "returns" into the common interrupt exit.
fn initial_stack(top: u64, entry: u64, start_len: u64) -> u64 {
    let frame_words: [u64; 22] = [
        0, 0, 0, 0, 0, 0, // r15..r12, rbp, rbx
        0, 0, 0, 0,      // r11..r8
        START_INFO_ADDR, // rdi
        start_len,       // rsi
        0, 0, 0,         // rdx, rcx, rax
        0, 0,            // vector, error code
        entry,           // rip
        0x23,            // cs: user code | RPL 3
        0x202,           // rflags: IF
        USER_STACK_TOP,  // rsp
        0x1b,            // ss: user data | RPL 3
    ];
    let frame = top - 22 * 8;
    let switch = frame - 7 * 8;
    let words = switch as *mut u64;
    // SAFETY: the top of a freshly mapped kernel stack that nothing uses yet.
    unsafe {
        for i in 0..6 {
            words.add(i).write(0);
        }
        words.add(6).write(crate::arch::x86_64::syscall::user_entry_trampoline());
        for (i, w) in frame_words.iter().enumerate() {
            (frame as *mut u64).add(i).write(*w);
        }
    }
    switch
}

/// Check the manifest and every binary, create the processes, wire up
/// their capabilities and queue them. Returns how many were started.
pub fn start_from_manifest(modules: &[BootModule], manifest_module: &BootModule) -> Result<usize, String> {
    let manifest = Manifest::decode(module_bytes(manifest_module)).map_err(|e| format!("manifest {}: {}", module_path(manifest_module), e))?;
    manifest.validate().map_err(|e| format!("manifest: {}", e))?;
    let paths: Vec<&str> = modules.iter().map(module_path).collect();
    manifest.check_binaries(&paths).map_err(|e| format!("manifest: {}", e))?;

    // Mounts first (each on its own: a failed one is logged and its grants
    // answer `unavailable`), then everything the grants need must exist
    // before anything starts: each kernel grant is made once here and
    // dropped, through the same table that makes it below.
    match crate::storage::mount_all(&manifest.mounts) {
        (0, 0) => {}
        (n, 0) => log::info!("storage: {} ready", capos_text::count::count(n, "mount", "mounts")),
        (n, failed) => log::warn!("storage: {} ready, {} failed (their capabilities answer unavailable)", capos_text::count::count(n, "mount", "mounts"), failed),
    }
    for spec in &manifest.processes {
        for g in &spec.grants {
            if let GrantSource::Kernel(src) = &g.source {
                let ks = KernelSource::parse(src).map_err(|e| format!("manifest: process {}: {}", spec.name, e))?;
                sources::grant(&ks).map_err(|e| format!("manifest: process {}: grant {}: {}", spec.name, g.name, e))?;
            }
        }
    }

    // Every exported endpoint exists before any process starts (unbound
    // until its server is added), so processes may be granted each other's.
    let mut endpoints: BTreeMap<(String, String), Arc<Endpoint>> = BTreeMap::new();
    for spec in &manifest.processes {
        for export in &spec.exports {
            endpoints.insert((spec.name.clone(), export.clone()), Arc::new(Endpoint::unbound()));
        }
    }
    let mut plans: Vec<Plan> = Vec::new();
    for (i, spec) in manifest.processes.iter().enumerate() {
        let module = modules.iter().find(|m| module_path(m) == spec.binary).ok_or(format!("manifest: no module {}", spec.binary))?;
        let mut grants = Vec::new();
        for (g, grant) in spec.grants.iter().enumerate() {
            let plan = match &grant.source {
                GrantSource::Kernel(src) => GrantPlan::Kernel(src.clone()),
                GrantSource::Endpoint { process, endpoint } => {
                    let ep = endpoints
                        .get(&(process.clone(), endpoint.clone()))
                        .ok_or(format!("manifest: process {} exports no endpoint {}", process, endpoint))?;
                    let badge = capos_abi::badge::manifest_grant(i, g, grant.read_only)
                        .ok_or(format!("manifest: process {}: grant {} cannot be badged", spec.name, grant.name))?;
                    GrantPlan::Endpoint(ep.clone(), badge)
                }
            };
            grants.push((grant.name.clone(), plan));
        }
        let exports = spec.exports.iter().map(|e| (e.clone(), endpoints[&(spec.name.clone(), e.clone())].clone())).collect();
        // What each grant of this process's endpoints may do, for it to
        // decide by (the badges are the ones the holders' calls carry).
        let mut grant_terms = Vec::new();
        for (j, holder) in manifest.processes.iter().enumerate() {
            for (g, grant) in holder.grants.iter().enumerate() {
                if let GrantSource::Endpoint { process, endpoint } = &grant.source {
                    if *process == spec.name && !grant.terms.is_empty() {
                        let badge = capos_abi::badge::manifest_grant(j, g, grant.read_only)
                            .ok_or(format!("manifest: process {}: grant {} cannot be badged", holder.name, grant.name))?;
                        grant_terms.push(capos_abi::start::GrantTerms { endpoint: endpoint.clone(), badge, terms: grant.terms.clone() });
                    }
                }
            }
        }
        plans.push(Plan { name: spec.name.clone(), binary: module_bytes(module), args: spec.args.clone(), grants, exports, grant_terms, cpu: spec.cpu.map(usize::from) });
    }

    // Load every instance first (nothing runs until all are good); pids
    // are assigned in manifest order.
    let _spawning = SPAWN.lock();
    let pids = with(|t| t.next_pids(plans.len()));
    if pids.len() != plans.len() {
        return Err(String::from("manifest: the process table is full"));
    }
    let mut instances = Vec::new();
    for (plan, pid) in plans.iter().zip(&pids) {
        instances.push(prepare(plan, *pid)?);
    }
    let count = plans.len();
    for (((plan, instance), spec), prepared) in plans.into_iter().zip(instances).zip(&manifest.processes).zip(pids) {
        let pid = launch(&plan, prepared, instance)?;
        supervisor::register(plan, spec.restart.max_restarts(), pid);
    }
    Ok(count)
}

/// Held from choosing a new process's pid to adding it under that pid:
/// its receive handles and endpoint bindings name the pid before it
/// exists, so two CPUs starting processes at once must not both take the
/// same next pid, and no dead process may leave the table meanwhile
/// (that frees a lower slot: `proc::reap` does not reap while this is
/// held).
pub(super) static SPAWN: crate::sync::Lock<()> = crate::sync::Lock::new(&crate::sync::classes::PROC_SPAWN, ());

/// Start a new instance of `plan` now (a restart); its pid. `starting`
/// is told the pid before the instance can run (on any CPU), so what it
/// records is already true when the instance first answers.
pub fn start_instance(plan: &Plan, starting: impl FnOnce(u32)) -> Result<u32, String> {
    let _spawning = SPAWN.lock();
    let pid = with(|t| t.next_pid()).ok_or("the process table is full")?;
    let instance = prepare(plan, pid)?;
    starting(pid);
    launch(plan, pid, instance)
}

/// Everything of an instance that will run as `pid`: its address space
/// with the binary, stack, StartInfo and IPC area mapped, its capability
/// table (kernel sources granted afresh, endpoint grants with their
/// badges, receive handles of its exports made for `pid`) and its kernel
/// stack. On error everything made so far is freed.
fn prepare(plan: &Plan, pid: u32) -> Result<Box<Process>, String> {
    let name = &plan.name;
    let (mut space, entry) = load_binary(name, plan.binary)?;
    let mut caps: CapTable<Cap> = CapTable::with_default_capacity();
    let mut start = StartInfo { name: name.clone(), args: plan.args.clone(), caps: Vec::new(), endpoints: Vec::new(), grant_terms: plan.grant_terms.clone() };
    for (export, ep) in &plan.exports {
        let h = caps.insert(Cap::EndpointServer(ServerHandle::new(ep.clone(), pid))).map_err(|e| format!("{:?}", e))?;
        start.endpoints.push((export.clone(), h));
    }
    for (grant, source) in &plan.grants {
        let cap = match source {
            GrantPlan::Kernel(src) => {
                let ks = KernelSource::parse(src).map_err(|e| format!("process {}: {}", name, e))?;
                sources::grant(&ks).map_err(|e| format!("process {}: grant {}: {}", name, grant, e))?
            }
            GrantPlan::Endpoint(ep, badge) => Cap::EndpointClient(Client::new(ep.clone(), *badge, false)),
        };
        let h: Handle = caps.insert(cap).map_err(|e| format!("{:?}", e))?;
        start.caps.push((grant.clone(), h));
    }
    let start_bytes = start.encode().map_err(|e| format!("process {}: StartInfo: {}", name, e))?;
    map_start_info(&mut space, &start_bytes)?;
    let ipc = IpcArea::new().ok_or(format!("process {}: no memory for its IPC area", name))?;
    map_ipc_area(&mut space, &ipc).map_err(|e| format!("process {}: IPC area: {:?}", name, e))?;
    let kstack = crate::mm::stacks::alloc("process", KERNEL_STACK_PAGES).map_err(|e| format!("process {}: kernel stack: {:?}", name, e))?;
    let ksp = initial_stack(kstack.top, entry, start_bytes.len() as u64);
    log::info!(
        "process {} (pid {}): entry {:#x}, {} pages, {} capabilities, {} endpoints{}",
        name, pid, entry, space.user_frames(), start.caps.len(), start.endpoints.len(),
        plan.cpu.map(|c| alloc::format!(", pinned to cpu {c}")).unwrap_or_default()
    );
    let serves = plan.exports.iter().map(|(_, ep)| ep.clone()).collect();
    Ok(Box::new(Process::new(name.clone(), Some(space), caps, Some(ipc)).with_stack(kstack, ksp, serves).with_affinity(plan.cpu)))
}

/// Bind a prepared instance's exported endpoints to it and queue it.
/// It was prepared for `prepared` (its receive handles name it): it is
/// added only as that pid, else refused (and freed) unrun. The endpoints
/// are bound first: once queued it may run at once on another CPU, and
/// its first receive must find them open.
fn launch(plan: &Plan, prepared: u32, instance: Box<Process>) -> Result<u32, String> {
    let unbind = |n: usize| plan.exports.iter().take(n).for_each(|(_, ep)| ep.close_for(prepared));
    for (i, (export, ep)) in plan.exports.iter().enumerate() {
        if let Err(e) = ep.bind(prepared) {
            unbind(i);
            return Err(format!("process {}: endpoint {} still has a live server: {:?}", plan.name, export, e));
        }
    }
    let pid = with(|t| if t.next_pid() == Some(prepared) { t.add(instance) } else { None });
    pid.ok_or_else(|| {
        unbind(plan.exports.len());
        format!("process {}: not added as the pid {} it was prepared for", plan.name, prepared)
    })
}
