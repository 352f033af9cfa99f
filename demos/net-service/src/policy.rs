//! Who may do what: the terms of each manifest grant of the `network`
//! endpoint, keyed by the grant's badge.
//!
//! The kernel badges every manifest grant by its position
//! (`capos_abi::badge::manifest_grant`) and hands this process the terms
//! of the grants that give some (`StartInfo.grantTerms`), so a call's
//! badge names the grant it came through. Rules:
//! - a `Network` call's badge must be a manifest grant's; one the service
//!   minted itself (a socket) is not a `Network` (`permissionDenied`);
//! - a grant with no terms may call `info` and nothing else;
//! - `listen` needs the port in `listen=`, `connect` the `connect` term,
//!   `udpBind` the `udp` term; a refusal names what was asked.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::badge;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::start::GrantTerms;
use capos_abi::terms::NetTerms;

#[derive(Debug, Default)]
pub struct Policy {
    grants: BTreeMap<u64, NetTerms>,
}

fn denied(message: &str) -> CapError {
    CapError::new(ErrorCode::PermissionDenied, message)
}

impl Policy {
    /// The terms of the grants of `endpoint`; terms that do not parse
    /// (the kernel validated them, so only a mismatch of versions) allow
    /// nothing, and are reported.
    pub fn from_start(grant_terms: &[GrantTerms], endpoint: &str) -> (Policy, Vec<String>) {
        let mut p = Policy::default();
        let mut problems = Vec::new();
        for g in grant_terms.iter().filter(|g| g.endpoint == endpoint) {
            match NetTerms::parse(&g.terms) {
                Ok(t) => {
                    p.grants.insert(g.badge, t);
                }
                Err(e) => problems.push(format!("grant badge {:#x}: {e}; it may only call info", g.badge)),
            }
        }
        (p, problems)
    }

    /// A policy of these (badge, terms) pairs (tests).
    pub fn of(grants: &[(u64, &str)]) -> Policy {
        Policy { grants: grants.iter().map(|(b, t)| (*b, NetTerms::parse(t).expect("valid terms"))).collect() }
    }

    /// How many grants have terms.
    pub fn grants(&self) -> usize {
        self.grants.len()
    }

    fn terms(&self, badge: u64) -> Result<Option<&NetTerms>, CapError> {
        if !badge::is_manifest(badge) {
            return Err(denied("this capability is not a Network (a socket's capability cannot open sockets)"));
        }
        Ok(self.grants.get(&badge))
    }

    /// `Network.info`: any grant of the endpoint.
    pub fn check_info(&self, badge: u64) -> Result<(), CapError> {
        self.terms(badge).map(|_| ())
    }

    pub fn check_listen(&self, badge: u64, port: u16) -> Result<(), CapError> {
        match self.terms(badge)? {
            Some(t) if t.may_listen(port) => Ok(()),
            Some(t) if !t.listen.is_empty() => Err(denied(&format!("listening on port {port} is not allowed by this grant's terms ({})", t.render()))),
            _ => Err(denied(&format!("listening on port {port} is not allowed: this grant's terms allow no listen"))),
        }
    }

    pub fn check_connect(&self, badge: u64) -> Result<(), CapError> {
        match self.terms(badge)? {
            Some(t) if t.connect => Ok(()),
            _ => Err(denied("connecting out is not allowed: this grant's terms lack 'connect'")),
        }
    }

    pub fn check_udp(&self, badge: u64, port: u16) -> Result<(), CapError> {
        match self.terms(badge)? {
            Some(t) if t.udp => Ok(()),
            _ => Err(denied(&format!("UDP (port {port}) is not allowed: this grant's terms lack 'udp'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(p: usize, g: usize) -> u64 {
        badge::manifest_grant(p, g, false).unwrap()
    }

    #[test]
    fn each_grant_gets_its_own_terms_and_no_terms_allow_only_info() {
        let (web, other, bare) = (grant(1, 1), grant(2, 0), grant(3, 0));
        let start = [
            GrantTerms { endpoint: "network".into(), badge: web, terms: "listen=80,8080 connect".into() },
            GrantTerms { endpoint: "network".into(), badge: other, terms: "udp".into() },
            GrantTerms { endpoint: "elsewhere".into(), badge: bare, terms: "udp connect listen=1-65535".into() },
        ];
        let (p, problems) = Policy::from_start(&start, "network");
        assert!(problems.is_empty());
        assert_eq!(p.grants(), 2, "terms of another endpoint are not ours");
        p.check_listen(web, 80).unwrap();
        p.check_listen(web, 8080).unwrap();
        let e = p.check_listen(web, 81).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert!(e.message.contains("port 81"), "{}", e.message);
        p.check_connect(web).unwrap();
        assert_eq!(p.check_udp(web, 53).unwrap_err().code, ErrorCode::PermissionDenied);
        p.check_udp(other, 0).unwrap();
        assert!(p.check_listen(other, 80).unwrap_err().message.contains("allow no listen"));
        assert_eq!(p.check_connect(other).unwrap_err().code, ErrorCode::PermissionDenied);
        for b in [bare, grant(9, 9)] {
            p.check_info(b).unwrap();
            assert!(p.check_listen(b, 80).is_err() && p.check_connect(b).is_err() && p.check_udp(b, 1).is_err(), "{b:#x}");
        }
    }

    #[test]
    fn a_sockets_badge_is_not_a_network() {
        let p = Policy::of(&[(grant(0, 0), "udp connect listen=1-65535")]);
        for b in [badge::server_minted(5), 0] {
            assert_eq!(p.check_info(b).unwrap_err().code, ErrorCode::PermissionDenied);
            assert!(p.check_listen(b, 80).is_err());
        }
    }

    #[test]
    fn terms_that_do_not_parse_allow_nothing_and_are_reported() {
        let b = grant(0, 0);
        let (p, problems) = Policy::from_start(&[GrantTerms { endpoint: "network".into(), badge: b, terms: "teleport".into() }], "network");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("teleport"));
        assert!(p.check_udp(b, 1).is_err());
        p.check_info(b).unwrap();
    }
}
