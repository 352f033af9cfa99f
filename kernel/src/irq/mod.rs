//! Interrupt controllers and routing: the legacy PICs are remapped and
//! masked, the local APIC handles delivery and EOI, I/O APICs route legacy
//! and platform interrupts (honouring the MADT's source overrides), and a
//! vector allocator hands vectors to devices (MSI/MSI-X and routes).

pub mod ioapic;
pub mod lapic;
pub mod pic;

use capos_kcore::acpi::{Madt, Polarity, Trigger};
use capos_kcore::vectors::{VectorAllocator, VectorError};
use spin::Mutex;

/// Fixed vectors.
pub const VECTOR_LAPIC_TIMER: u8 = 0x20;
pub const VECTOR_SPURIOUS: u8 = 0xff;
/// The pool for everything else.
pub const POOL_FIRST: u8 = 0x30;
pub const POOL_LAST: u8 = 0xfe;

static VECTORS: Mutex<VectorAllocator> = Mutex::new(VectorAllocator::new(POOL_FIRST, POOL_LAST));

pub fn alloc_vector() -> Result<u8, VectorError> {
    VECTORS.lock().alloc()
}

pub fn release_vector(v: u8) -> Result<(), VectorError> {
    VECTORS.lock().release(v)
}

pub fn vectors_in_use() -> u32 {
    VECTORS.lock().in_use()
}

/// Where an ISA IRQ really arrives, after the MADT's overrides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaRoute {
    pub irq: u8,
    pub gsi: u32,
    pub active_low: bool,
    pub level: bool,
    pub overridden: bool,
}

/// ISA interrupts default to GSI = IRQ, edge, active high, unless the MADT
/// overrides them.
pub fn isa_route(madt: Option<&Madt>, irq: u8) -> IsaRoute {
    let o = madt.and_then(|m| m.overrides.iter().find(|o| o.bus == 0 && o.source == irq));
    match o {
        Some(o) => IsaRoute {
            irq,
            gsi: o.gsi,
            active_low: o.polarity == Polarity::ActiveLow,
            level: o.trigger == Trigger::Level,
            overridden: true,
        },
        None => IsaRoute { irq, gsi: irq as u32, active_low: false, level: false, overridden: false },
    }
}

/// Bring up interrupt delivery: PICs off, local APIC on, I/O APICs masked.
pub fn init(madt: Option<&Madt>) {
    pic::remap_and_mask();
    lapic::init(madt);
    ioapic::init(madt);
}
