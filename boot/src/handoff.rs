//! The last step: the protocol's GDT, the switch to our page tables and the
//! jump to the kernel in the documented machine state.

use core::arch::asm;

/// Null, 16-bit code/data, 32-bit code/data, 64-bit code (0x28) / data (0x30).
const GDT: [u64; 7] = [
    0,
    0x0000_9a00_0000_ffff,
    0x0000_9200_0000_ffff,
    0x00cf_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
    0x00af_9a00_0000_ffff,
    0x00cf_9200_0000_ffff,
];

/// Write the GDT and its 10-byte descriptor into the page at `page`;
/// returns the address of the descriptor.
pub fn write_gdt(page: u64) -> u64 {
    let table = crate::phys_slice(page, 4096);
    for (i, d) in GDT.iter().enumerate() {
        table[i * 8..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
    }
    let desc = 512;
    let limit = (GDT.len() * 8 - 1) as u16;
    table[desc..desc + 2].copy_from_slice(&limit.to_le_bytes());
    // The GDT base is the HHDM alias so it stays valid without the identity map.
    table[desc + 2..desc + 10].copy_from_slice(&(page + capos_bootproto::HHDM_OFFSET).to_le_bytes());
    page + desc as u64
}

/// Mask both legacy PICs, as the protocol promises.
fn mask_pics() {
    // SAFETY: writes the PIC interrupt mask registers; no memory effects.
    unsafe {
        asm!("out 0x21, al", "out 0xa1, al", in("al") 0xffu8, options(nomem, nostack, preserves_flags));
    }
}

/// Enter the kernel: interrupts off, NX and WP on, our GDT and page tables,
/// CS = 0x28, data segments 0x30, `rsp` on the given stack with a 0 return
/// address pushed, every other general purpose register zero.
///
/// # Safety
/// `pml4` must map this code (identity), `gdtr` and `stack_top` (HHDM),
/// and the kernel; boot services must have been exited.
pub unsafe fn enter_kernel(pml4: u64, gdtr: u64, stack_top: u64, entry: u64) -> ! {
    mask_pics();
    // SAFETY: the caller guarantees the mappings; see the function docs.
    unsafe {
        asm!(
            "cli",
            "cld",
            // EFER.NXE so the NX bits in our tables are legal.
            "mov ecx, 0xc0000080",
            "rdmsr",
            "or eax, 0x800",
            "wrmsr",
            // CR0.WP
            "mov rax, cr0",
            "or rax, 0x10000",
            "mov cr0, rax",
            "lgdt [r11]",
            "mov cr3, r8",
            // Reload CS through a far return.
            "push 0x28",
            "lea rax, [rip + 2f]",
            "push rax",
            "retfq",
            "2:",
            "mov ax, 0x30",
            "mov ds, ax",
            "mov es, ax",
            "mov ss, ax",
            "mov fs, ax",
            "mov gs, ax",
            "mov rsp, r9",
            "push 0",
            "push r10",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "ret",
            in("r8") pml4,
            in("r9") stack_top,
            in("r10") entry,
            in("r11") gdtr,
            options(noreturn),
        )
    }
}
