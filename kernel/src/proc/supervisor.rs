//! Supervision: what the kernel remembers of each manifest process so it
//! can start it again (`restart: on-failure`) and answer `ProcessControl`.
//!
//! A [`Plan`] is everything an instance is made from: the boot module, the
//! arguments, the grants (kernel sources by name, granted afresh; endpoint
//! grants as the same `Endpoint` objects with the same badges) and the
//! exported endpoints. When an instance ends, `capos_kcore::restart`
//! decides; a restart loads a new instance from the same plan and re-binds
//! every exported endpoint to it, so each client's existing capability
//! reaches the new instance (the calls in flight at the death have failed
//! with `PeerGone`). The log line says what happened:
//! `proc: fs (pid 7) killed: ...; restarted as pid 65543 (restart #3), endpoint fs/files re-bound`.
//!
//! Lock order: the registry is never held while the process table is
//! taken (a restart loads outside it), and `ProcessControl` reads it with
//! the table held, so the two never nest the other way.

use super::Exit;
use crate::cap::endpoint::Endpoint;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_kcore::restart::{decide, Ending, Verdict};
use crate::sync::{classes, Lock};

/// Where a grant's capability comes from, each time an instance starts.
#[derive(Clone)]
pub enum GrantPlan {
    /// A kernel source (`control:fs`, `fs:data`, ...), granted afresh.
    Kernel(String),
    /// A client of another process's exported endpoint, with its badge.
    Endpoint(Arc<Endpoint>, u64),
}

/// How to make an instance of one manifest process.
#[derive(Clone)]
pub struct Plan {
    pub name: String,
    pub binary: &'static [u8],
    pub args: Vec<String>,
    pub grants: Vec<(String, GrantPlan)>,
    pub exports: Vec<(String, Arc<Endpoint>)>,
    /// Terms of the manifest grants of its endpoints (StartInfo.grantTerms).
    pub grant_terms: Vec<capos_abi::start::GrantTerms>,
    /// The manifest's `cpu: N`, for every instance.
    pub cpu: Option<usize>,
}

struct Supervised {
    plan: Plan,
    max_restarts: Option<u32>,
    restarts: u32,
    pid: u32,
    running: bool,
}

static REGISTRY: Lock<Vec<Supervised>> = Lock::new(&classes::PROC_SUPERVISOR, Vec::new());

/// What `ProcessControl.status` reports.
pub use crate::cap::waiters::ProcessStatus as Status;

/// Remember a manifest process started as `pid`.
pub fn register(plan: Plan, max_restarts: Option<u32>, pid: u32) {
    REGISTRY.lock().push(Supervised { plan, max_restarts, restarts: 0, pid, running: true });
}

/// The status of the manifest process `name`, if there is one.
pub fn status(name: &str) -> Option<Status> {
    REGISTRY.lock().iter().find(|s| s.plan.name == name).map(|s| Status { pid: s.pid, running: s.running, restarts: s.restarts })
}

/// `pid` ended `how`: restart it if its policy says so. `None` when it is
/// not a supervised manifest process (the caller logs the plain line),
/// else what the supervisor did, for the log.
pub fn ended(pid: u32, how: &Exit) -> Option<String> {
    let ending = match how {
        Exit::Status(s) => Ending::Exited(*s),
        Exit::Killed(_) => Ending::Killed,
    };
    let (index, verdict, plan) = {
        let mut reg = REGISTRY.lock();
        let index = reg.iter().position(|s| s.pid == pid && s.running)?;
        let s = &mut reg[index];
        s.running = false;
        let verdict = decide(s.max_restarts, ending, s.restarts);
        if let Verdict::Restart { number } = verdict {
            s.restarts = number;
        }
        (index, verdict, s.plan.clone())
    };
    match verdict {
        Verdict::NoPolicy => None,
        Verdict::Succeeded => Some(String::from("not restarted (exit status 0 is success)")),
        Verdict::BudgetSpent { max } => Some(format!("not restarted: its restart budget ({max} restarts in one boot) is spent")),
        Verdict::Restart { number } => Some(match super::loader::start_instance(&plan, |new_pid| {
            // Recorded before the new instance runs: a status asked of it
            // by a client it has answered already says it runs.
            let mut reg = REGISTRY.lock();
            reg[index].pid = new_pid;
            reg[index].running = true;
        }) {
            Ok(new_pid) => {
                let mut line = format!("restarted as pid {new_pid} (restart #{number})");
                for (export, _) in &plan.exports {
                    line.push_str(&format!(", endpoint {}/{export} re-bound", plan.name));
                }
                line
            }
            Err(e) => {
                REGISTRY.lock()[index].running = false;
                format!("restart #{number} failed: {e}")
            }
        }),
    }
}
