//! `StartInfo`: what a new process learns about itself at entry.
//!
//! The kernel builds it from the process's manifest entry and maps it
//! read-only into the process; `rdi`/`rsi` at entry give its address and
//! length (see [`crate::syscall`]). The runtime decodes it to find its
//! capabilities by the names the manifest gave them.

use crate::capos_capnp::{grant_terms, named_cap, start_info};
use crate::message::{read_message, write_message, MessageError};
use crate::Handle;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// A decoded `StartInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StartInfo {
    /// The process's manifest name.
    pub name: String,
    pub args: Vec<String>,
    /// Granted capabilities, in manifest order.
    pub caps: Vec<(String, Handle)>,
    /// Receive handles of the endpoints the process exports.
    pub endpoints: Vec<(String, Handle)>,
    /// Terms of the manifest grants of its endpoints that give some.
    pub grant_terms: Vec<GrantTerms>,
}

/// What one manifest grant of an endpoint of this process may do
/// (`crate::terms`): calls through that grant arrive with `badge`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GrantTerms {
    pub endpoint: String,
    pub badge: u64,
    pub terms: String,
}

impl StartInfo {
    /// The granted capability called `name`.
    pub fn cap(&self, name: &str) -> Option<Handle> {
        self.caps.iter().find(|(n, _)| n == name).map(|(_, h)| *h)
    }

    /// The receive handle of the exported endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<Handle> {
        self.endpoints.iter().find(|(n, _)| n == name).map(|(_, h)| *h)
    }

    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let mut message = capnp::message::Builder::new_default();
        let mut root = message.init_root::<start_info::Builder>();
        root.set_name(self.name.as_str());
        let mut args = root.reborrow().init_args(self.args.len() as u32);
        for (i, a) in self.args.iter().enumerate() {
            args.set(i as u32, a.as_str());
        }
        fill(root.reborrow().init_caps(self.caps.len() as u32), &self.caps);
        fill(root.reborrow().init_endpoints(self.endpoints.len() as u32), &self.endpoints);
        let mut terms = root.init_grant_terms(self.grant_terms.len() as u32);
        for (i, t) in self.grant_terms.iter().enumerate() {
            let mut b = terms.reborrow().get(i as u32);
            b.set_endpoint(t.endpoint.as_str());
            b.set_badge(t.badge);
            b.set_terms(t.terms.as_str());
        }
        write_message(&message)
    }

    pub fn decode(bytes: &[u8]) -> Result<StartInfo, MessageError> {
        let reader = read_message(bytes)?;
        let root = reader.get_root::<start_info::Reader>()?;
        let mut info = StartInfo { name: text(root.get_name()?)?, ..Default::default() };
        for a in root.get_args()? {
            info.args.push(text(a?)?);
        }
        info.caps = read_named(root.get_caps()?)?;
        info.endpoints = read_named(root.get_endpoints()?)?;
        for t in root.get_grant_terms()? {
            let t: grant_terms::Reader<'_> = t;
            info.grant_terms.push(GrantTerms { endpoint: text(t.get_endpoint()?)?, badge: t.get_badge(), terms: text(t.get_terms()?)? });
        }
        Ok(info)
    }
}

fn fill(mut list: capnp::struct_list::Builder<'_, named_cap::Owned>, items: &[(String, Handle)]) {
    for (i, (name, handle)) in items.iter().enumerate() {
        let mut b = list.reborrow().get(i as u32);
        b.set_name(name.as_str());
        b.set_handle(handle.raw());
    }
}

fn read_named(list: capnp::struct_list::Reader<'_, named_cap::Owned>) -> Result<Vec<(String, Handle)>, MessageError> {
    let mut out = Vec::with_capacity(list.len() as usize);
    for c in list {
        out.push((text(c.get_name()?)?, Handle::from_raw(c.get_handle())));
    }
    Ok(out)
}

fn text(t: capnp::text::Reader<'_>) -> Result<String, MessageError> {
    Ok(t.to_str().map_err(capnp::Error::from)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StartInfo {
        StartInfo {
            name: "ping".into(),
            args: vec!["--rounds".into(), "10".into()],
            caps: vec![("console".into(), Handle::new(0, 1)), ("server".into(), Handle::new(1, 1))],
            endpoints: vec![("replies".into(), Handle::new(2, 1))],
            grant_terms: vec![GrantTerms { endpoint: "replies".into(), badge: 0x2_0001, terms: "listen=80 udp".into() }],
        }
    }

    #[test]
    fn round_trips_and_looks_up_by_name() {
        let info = sample();
        let decoded = StartInfo::decode(&info.encode().unwrap()).unwrap();
        assert_eq!(decoded, info);
        assert_eq!(decoded.cap("server"), Some(Handle::new(1, 1)));
        assert_eq!(decoded.cap("replies"), None, "endpoints are not grants");
        assert_eq!(decoded.endpoint("replies"), Some(Handle::new(2, 1)));
        assert_eq!(decoded.cap("missing"), None);
        assert_eq!(StartInfo::decode(&StartInfo::default().encode().unwrap()).unwrap(), StartInfo::default());
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let bytes = sample().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(StartInfo::decode(&bytes[..n]).is_err(), "truncated to {n}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let _ = StartInfo::decode(&b);
            }
        }
    }
}
