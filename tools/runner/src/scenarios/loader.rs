//! capos-boot itself: its boot menu, and boot volumes it must refuse.

use super::*;

/// Two entries, a 3 s timeout, the first the default.
fn menu_boot(name: &'static str, expect: &[&str]) -> Boot {
    let conf = "timeout: 3\ndefault_entry: 1\n\n/smoke\n    protocol: limine\n    path: boot():/boot/capos-kernel\n    cmdline: test=smoke\n\n/timer check\n    protocol: limine\n    path: boot():/boot/capos-kernel\n    cmdline: test=timer\n";
    let mut e = strings(&["{other} capos-boot: boot menu", "{other}   1) smoke (default)", "{other}   2) timer check"]);
    e.extend(strings(expect));
    let e: Vec<&str> = e.iter().map(|s| s.as_str()).collect();
    kernel_boot(name, "", Expect::Success, &e)
        .volume(BootVolume::Made(Box::new(move |art| volume_with(art, Some(conf), Some(Content::File(art.kernel.clone()))))))
}

/// A boot volume that capos-boot must refuse, with the message it must print.
fn bad_volume(name: &'static str, message: &'static str, make: impl Fn(&Artifacts) -> Volume + 'static) -> Boot {
    Boot::new(name, BootVolume::Made(Box::new(make)), Expect::LoaderError)
        .expect(vec![format!("{{other}} {message}"), "{other} capos-boot: cannot boot".into()])
        .forbid(strings(&["capos kernel starting"]))
}

fn volume_with(art: &Artifacts, conf: Option<&str>, kernel: Option<Content>) -> Volume {
    let mut v = Volume::new();
    v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
    if let Some(k) = kernel {
        v.add("/boot/capos-kernel", k);
    }
    if let Some(c) = conf {
        v.add("/limine.conf", Content::Bytes(c.as_bytes().to_vec()));
    }
    v
}

pub(super) fn boot_menu() -> Scenario {
    Scenario {
        name: "boot-menu",
        description: "capos-boot's menu: a typed digit picks an entry; without one the default boots at the timeout",
        capos_boot_only: true,
        boots: vec![
            menu_boot("pick-second", &["{other} booting entry 'timer check'", "[PASS] lapic-timer-ticks"])
                .script(vec![("press 1-2 to choose".into(), b"2".to_vec())])
                .forbid(strings(&["[PASS] smoke-heap", "KERNEL PANIC"])),
            menu_boot("timeout", &["{other} capos-boot: timeout; booting entry 1", "{other} booting entry 'smoke'", "[PASS] smoke-heap"])
                .forbid(strings(&["[PASS] lapic-timer-ticks", "KERNEL PANIC"])),
        ],
    }
}

pub(super) fn loader_errors() -> Scenario {
    Scenario {
        name: "loader-errors",
        description: "bad boot volumes: capos-boot names the problem and returns an error",
        capos_boot_only: true,
        boots: vec![
            bad_volume("no-config", "no limine.conf on the boot volume", |art| {
                volume_with(art, None, Some(Content::File(art.kernel.clone())))
            }),
            bad_volume("malformed-config", "limine.conf line 3: entry 'capOS' asks for protocol 'multiboot2'", |art| {
                volume_with(
                    art,
                    Some("timeout: 0\n/capOS\n    protocol: multiboot2\n    path: boot():/boot/capos-kernel\n"),
                    Some(Content::File(art.kernel.clone())),
                )
            }),
            bad_volume("missing-kernel", "kernel '/boot/capos-kernel' not found on the boot volume", |art| {
                volume_with(art, Some(&limine_conf("", &[])), None)
            }),
            bad_volume("not-elf", "kernel '/boot/capos-kernel' rejected: not an ELF file", |art| {
                volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(b"MZ this is not an ELF kernel".to_vec())))
            }),
            bad_volume("lower-half-kernel", "is in the lower half", |art| {
                let elf = elfgen::elf(0x20_0000, &[elfgen::Segment { vaddr: 0x20_0000, flags: elfgen::PF_R | elfgen::PF_X, data: vec![0xf4; 16] }]);
                volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(elf)))
            }),
            bad_volume("wx-segment", "is both writable and executable (W^X refused)", |art| {
                let k = elfgen::KERNEL_BASE;
                let elf = elfgen::elf(k, &[elfgen::Segment { vaddr: k, flags: elfgen::PF_R | elfgen::PF_W | elfgen::PF_X, data: vec![0xf4; 16] }]);
                volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(elf)))
            }),
            bad_volume("missing-module", "module '/boot/init' not found on the boot volume", |art| {
                volume_with(art, Some(&limine_conf("", &[("/boot/init", "init")])), Some(Content::File(art.kernel.clone())))
            }),
            bad_volume("base-revision-too-new", "kernel requires Limine base revision 99", |art| {
                volume_with(art, Some(&limine_conf("", &[])), Some(Content::Bytes(elfgen::kernel_wanting_revision(99))))
            }),
        ],
    }
}
