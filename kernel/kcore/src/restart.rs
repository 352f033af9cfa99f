//! Whether a supervised process is started again when it ends.
//!
//! Rules (the manifest's `restart: on-failure [max N]`):
//! 1. Only a process with the policy is restarted.
//! 2. Exit status 0 is success: never restarted.
//! 3. A non-zero exit, a fault and a kill (`ProcessControl.kill`) are
//!    failures: restarted while fewer than `max` restarts have happened in
//!    this boot; after that it stays dead, and the verdict says why.

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited(u64),
    Killed,
}

/// What the supervisor does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Start it again; this is restart number `number` (1-based).
    Restart { number: u32 },
    /// No `restart:` policy.
    NoPolicy,
    /// Exit 0.
    Succeeded,
    /// `max` restarts already happened.
    BudgetSpent { max: u32 },
}

/// Rules 1 to 3. `max_restarts` is `None` without a policy;
/// `restarts` is how many restarts this process has had so far.
pub fn decide(max_restarts: Option<u32>, ending: Ending, restarts: u32) -> Verdict {
    let Some(max) = max_restarts else { return Verdict::NoPolicy };
    if ending == Ending::Exited(0) {
        return Verdict::Succeeded;
    }
    if restarts >= max {
        return Verdict::BudgetSpent { max };
    }
    Verdict::Restart { number: restarts + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_restart_until_the_budget_is_spent() {
        let mut restarts = 0;
        for ending in [Ending::Killed, Ending::Exited(1), Ending::Exited(u64::MAX), Ending::Killed, Ending::Exited(101)] {
            match decide(Some(5), ending, restarts) {
                Verdict::Restart { number } => {
                    assert_eq!(number, restarts + 1);
                    restarts = number;
                }
                v => panic!("{ending:?} after {restarts} restarts: {v:?}"),
            }
        }
        assert_eq!(restarts, 5);
        assert_eq!(decide(Some(5), Ending::Killed, 5), Verdict::BudgetSpent { max: 5 });
        assert_eq!(decide(Some(5), Ending::Exited(3), 6), Verdict::BudgetSpent { max: 5 });
    }

    #[test]
    fn success_and_no_policy_are_never_restarted() {
        assert_eq!(decide(Some(1000), Ending::Exited(0), 0), Verdict::Succeeded);
        assert_eq!(decide(None, Ending::Killed, 0), Verdict::NoPolicy);
        assert_eq!(decide(None, Ending::Exited(1), 0), Verdict::NoPolicy);
        assert_eq!(decide(Some(0), Ending::Killed, 0), Verdict::BudgetSpent { max: 0 });
    }
}
