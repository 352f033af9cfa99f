//! The `net-nic` scenario's boots: virtio-net behind the `Nic` capability
//! (docs/network.md). QEMU's user network with `restrict=on`, so the guest
//! reaches nothing outside the host; no forwards. `demos/net-check` does
//! the checking; the runner adds the kernel's bind line, the prompt's
//! `devices`, and a manifest granting the card twice.

use super::{kernel_boot, strings, user_boot, Boot, Expect, Scenario};
use crate::volumes::esp::{limine_conf, Content, Volume};
use crate::volumes::BootVolume;
use capos_abi::manifest::GrantSource;

/// The MAC the runner gives the card and net-check expects
/// (demos/net-check.manifest).
pub const MAC: &str = crate::machine::NIC_MAC;

/// QEMU arguments of one virtio-net card on a restricted user network;
/// `device` adds properties (`,disable-legacy=on`, `,host_mtu=1400`).
pub fn nic_args(device: &str) -> Vec<String> {
    nic_args_with("", device)
}

/// [`nic_args`] with the boot's host-side forwards
/// ([`crate::boot::HOSTFWD`]: 127.0.0.1 only, ports the runner picks).
pub fn nic_args_forwarding(device: &str) -> Vec<String> {
    nic_args_with(crate::boot::HOSTFWD, device)
}

fn nic_args_with(forwards: &str, device: &str) -> Vec<String> {
    crate::machine::user_nic(forwards, device)
}

/// Every check net-check prints.
const CHECKS: &[&str] = &[
    "nic-info",
    "nic-counters-start",
    "nic-receive-empty",
    "nic-arp",
    "nic-counters",
    "nic-refuses-runt",
    "nic-refuses-empty-frame",
    "nic-refuses-too-long",
    "nic-refuses-transmit-without-buffer",
    "nic-refuses-receive-without-buffer",
    "nic-refuses-small-receive-buffer",
    "nic-refuses-receive-into-readable-buffer",
    "nic-refuses-transmit-from-ipc-area",
    "nic-refuses-receive-into-ipc-area",
    "nic-refuses-receive-into-read-only-page",
    "nic-read-only-page-untouched",
    "nic-refuses-unmapped-buffer",
    "nic-drops-counted",
    "nic-max-frame",
    "nic-still-works",
];

/// net-check on `machine` with the card `device`, whose bind line must say
/// `bound`; then the prompt's `devices` must list it.
fn check_boot(name: &'static str, machine: &'static str, device: &str, bound: &str, mtu: u16) -> Boot {
    let pass: Vec<String> = CHECKS.iter().map(|c| format!("[net-check] [PASS] {c}")).collect();
    let listed = format!("net0: virtio-net mac {MAC}, link up, mtu {mtu}");
    let tally = format!("[net-check] net-check: {} passed, 0 failed", CHECKS.len());
    let info = format!("[net-check] [PASS] nic-info: mac {MAC}, mtu {mtu}, link up, frames up to {} bytes", mtu + 14);
    let mut expect: Vec<&str> = vec![bound, &tally, "process net-check (pid 1) exited with status 0", "capos> devices", &listed, &info, "halting"];
    expect.extend(pass.iter().map(String::as_str));
    user_boot(name, "demos/net-check.manifest", "log=info", &expect)
        .machine(machine)
        .qemu_args(nic_args(device))
        .script(vec![("capos> ".into(), b"devices\r".to_vec()), ("capos> ".into(), b"halt\r".to_vec())])
        .forbid(strings(&["KERNEL PANIC", "EXCEPTION (unexpected)", "[net-check] [FAIL]"]))
}

/// A manifest that grants net0 to two processes, as mkmanifest would never
/// write it (`encode_unchecked`): the kernel must refuse it at boot.
const TWO_HOLDERS: &str = "process net-check
    binary: /boot/net-check
    grant console: kernel:console
    grant nic: kernel:nic:net0
process second
    binary: /boot/net-check
    grant console: kernel:console
    grant nic: kernel:nic:net1
";

fn two_holders_manifest() -> Vec<u8> {
    let mut m = mkmanifest::parse(TWO_HOLDERS).expect("the base manifest is valid");
    m.processes[1].grants[1].source = GrantSource::Kernel("nic:net0".into());
    m.encode_unchecked().expect("encodes")
}

fn two_holders_boot() -> Boot {
    let cmdline = "exit_when_idle";
    kernel_boot("two-holders", cmdline, Expect::Success, &[
        "userspace not started: manifest /boot/manifest: grant 'nic': nic:net0 is already granted to process 'net-check' (grant 'nic'); a network device has one holder",
    ])
        .qemu_args(nic_args(",disable-legacy=on"))
        .forbid(strings(&["KERNEL PANIC", "EXCEPTION (unexpected)", "processes started from"]))
        .volume(BootVolume::Made(Box::new(move |art| {
            let mut v = Volume::new();
            v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
            v.add("/boot/capos-kernel", Content::File(art.kernel.clone()));
            v.add("/boot/manifest", Content::Bytes(two_holders_manifest()));
            v.add("/limine.conf", Content::Bytes(limine_conf(cmdline, &[("/boot/manifest", "manifest")]).into_bytes()));
            v
        })))
}

fn boots() -> Vec<Boot> {
    vec![
        check_boot("q35-modern", "q35", ",disable-legacy=on", "(1af4:1041, modern): net0 mac 52:54:00:12:34:56, mtu 1500 (the device offers none), link up", 1500),
        check_boot("pc-transitional", "pc", ",host_mtu=1400", "(1af4:1000, transitional): net0 mac 52:54:00:12:34:56, mtu 1400 (the device offers 1400), link up", 1400),
        two_holders_boot(),
    ]
}

pub(super) fn net_nic() -> Scenario {
    Scenario {
        name: "net-nic",
        description: "virtio-net behind the Nic capability: net-check reads the MAC QEMU was given, exchanges ARP with QEMU's gateway (user network, restrict=on), sees the counters move and bad frames and buffers refused while the card keeps working, on a modern card (q35) and a transitional one with a 1400-byte MTU (pc); devices lists it; a manifest granting it twice is refused at boot",
        capos_boot_only: false,
        boots: boots(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_two_holder_manifest_is_one_mkmanifest_refuses() {
        let bytes = super::two_holders_manifest();
        let e = capos_abi::manifest::Manifest::decode(&bytes).unwrap_err().to_string();
        assert!(e.contains("a network device has one holder"), "{e}");
    }
}
