//! CPU identification and the protection bits the kernel turns on.

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;

pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID is available on every x86_64 CPU.
    let r = unsafe { __cpuid_count(leaf, sub) };
    (r.eax, r.ebx, r.ecx, r.edx)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub nx: bool,
    pub smep: bool,
    pub smap: bool,
    pub umip: bool,
    pub pdpe1gb: bool,
    pub x2apic: bool,
    pub invariant_tsc: bool,
}

pub fn features() -> Features {
    let max = cpuid(0, 0).0;
    let max_ext = cpuid(0x8000_0000, 0).0;
    let (_, _, ecx1, _) = cpuid(1, 0);
    let (_, ebx7, ecx7, _) = if max >= 7 { cpuid(7, 0) } else { (0, 0, 0, 0) };
    let (_, _, _, edx81) = if max_ext >= 0x8000_0001 { cpuid(0x8000_0001, 0) } else { (0, 0, 0, 0) };
    let (_, _, _, edx87) = if max_ext >= 0x8000_0007 { cpuid(0x8000_0007, 0) } else { (0, 0, 0, 0) };
    Features {
        nx: edx81 & (1 << 20) != 0,
        pdpe1gb: edx81 & (1 << 26) != 0,
        smep: ebx7 & (1 << 7) != 0,
        smap: ebx7 & (1 << 20) != 0,
        umip: ecx7 & (1 << 2) != 0,
        x2apic: ecx1 & (1 << 21) != 0,
        invariant_tsc: edx87 & (1 << 8) != 0,
    }
}

/// The vendor string, e.g. "GenuineIntel".
pub fn vendor() -> [u8; 12] {
    let (_, b, c, d) = cpuid(0, 0);
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&b.to_le_bytes());
    v[4..8].copy_from_slice(&d.to_le_bytes());
    v[8..].copy_from_slice(&c.to_le_bytes());
    v
}

pub fn read_cr0() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: as above.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub fn read_cr4() -> u64 {
    let v;
    // SAFETY: as above.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Read one of the MSRs named below (every x86_64 CPU has them; a
/// missing MSR would fault, so the set is closed).
fn rdmsr(msr: Msr) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `msr` is one of the architectural MSRs below, present on every
    // x86_64 CPU (with an APIC, for IA32_APIC_BASE); reading them has no
    // side effects.
    unsafe { asm!("rdmsr", in("ecx") msr as u32, out("eax") lo, out("edx") hi, options(nomem, nostack)) }
    (hi as u64) << 32 | lo as u64
}

#[derive(Clone, Copy)]
#[repr(u32)]
enum Msr {
    ApicBase = 0x1b,
    Efer = 0xc000_0080,
}

pub fn read_efer() -> u64 {
    rdmsr(Msr::Efer)
}

/// IA32_APIC_BASE: the local APIC's physical base and enable bits.
pub fn read_apic_base() -> u64 {
    rdmsr(Msr::ApicBase)
}

const CR0_WP: u64 = 1 << 16;
const CR4_UMIP: u64 = 1 << 11;
const CR4_SMEP: u64 = 1 << 20;
const CR4_SMAP: u64 = 1 << 21;
const EFER_NXE: u64 = 1 << 11;

/// What [`enable_protections`] turned on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Protections {
    pub nx: bool,
    pub wp: bool,
    pub smep: bool,
    pub smap: bool,
    pub umip: bool,
}

/// Turn on NX (EFER.NXE), WP, and SMEP/SMAP/UMIP where the CPU has them.
pub fn enable_protections(f: &Features) -> Protections {
    // SAFETY: these bits only restrict what code may do; the kernel's own
    // mappings were built for them (no user pages are touched by the
    // kernel without the user-access helpers, none exist yet).
    unsafe {
        if f.nx {
            let efer = read_efer() | EFER_NXE;
            asm!("wrmsr", in("ecx") 0xc000_0080u32, in("eax") efer as u32, in("edx") (efer >> 32) as u32, options(nostack));
        }
        asm!("mov cr0, {}", in(reg) read_cr0() | CR0_WP, options(nostack));
        let mut cr4 = read_cr4();
        if f.smep {
            cr4 |= CR4_SMEP;
        }
        if f.smap {
            cr4 |= CR4_SMAP;
        }
        if f.umip {
            cr4 |= CR4_UMIP;
        }
        asm!("mov cr4, {}", in(reg) cr4, options(nostack));
    }
    let cr4 = read_cr4();
    Protections {
        nx: read_efer() & EFER_NXE != 0,
        wp: read_cr0() & CR0_WP != 0,
        smep: cr4 & CR4_SMEP != 0,
        smap: cr4 & CR4_SMAP != 0,
        umip: cr4 & CR4_UMIP != 0,
    }
}

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (hi as u64) << 32 | lo as u64
}

pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops this CPU; with interrupts off it never resumes.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Run `f` on the stack whose top is `stack_top`; never returns.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned top of a mapped, unused stack.
pub unsafe fn switch_stack(stack_top: u64, f: extern "C" fn() -> !) -> ! {
    // SAFETY: forwarded to the caller; `f` never returns, so the old stack
    // is simply abandoned.
    unsafe {
        asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            top = in(reg) stack_top,
            f = in(reg) f,
            options(noreturn),
        )
    }
}

/// Enable interrupts and halt until one arrives (atomically: STI's
/// one-instruction shadow covers the HLT, so no wake-up is lost).
#[cfg_attr(debug_assertions, track_caller)]
pub fn wait_for_interrupt() {
    #[cfg(debug_assertions)]
    super::irq_off::paused(core::panic::Location::caller());
    // SAFETY: handlers are installed before the idle loop runs. Not
    // `nomem`: a compiler barrier, so a check made before it is not moved
    // after the halt.
    unsafe { asm!("sti", "hlt", options(nostack)) }
}

/// Reset the CPU by loading an empty IDT and raising an exception.
pub fn triple_fault() -> ! {
    let null = x86_64::structures::DescriptorTablePointer { limit: 0, base: x86_64::VirtAddr::new(0) };
    // SAFETY: deliberately unrecoverable; used only as the last way to reboot.
    unsafe {
        asm!("cli", "lidt [{}]", "int3", in(reg) &null, options(noreturn));
    }
}
