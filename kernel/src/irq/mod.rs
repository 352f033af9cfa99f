//! Interrupt controllers and routing: the legacy PICs are remapped and
//! masked, the local APIC handles delivery and EOI, I/O APICs route legacy
//! and platform interrupts (honouring the MADT's source overrides), and a
//! vector allocator hands vectors to devices (MSI/MSI-X and routes).

pub mod ioapic;
pub mod lapic;
pub mod pic;

use capos_kcore::acpi::Madt;
use capos_kcore::vectors::{VectorAllocator, VectorError};
use crate::sync::{classes, Lock};

/// Fixed vectors.
pub const VECTOR_LAPIC_TIMER: u8 = 0x20;
/// Inter-processor interrupts (`lapic::send_ipi`): "run the scheduler"
/// and "flush your TLB". Below the pool, so no device gets them.
pub const VECTOR_RESCHEDULE: u8 = 0x21;
pub const VECTOR_TLB_SHOOTDOWN: u8 = 0x22;
pub const VECTOR_SPURIOUS: u8 = 0xff;
/// The pool for everything else.
pub const POOL_FIRST: u8 = 0x30;
pub const POOL_LAST: u8 = 0xfe;

static VECTORS: Lock<VectorAllocator> = Lock::new(&classes::IRQ_VECTORS, VectorAllocator::new(POOL_FIRST, POOL_LAST));

pub fn alloc_vector() -> Result<u8, VectorError> {
    VECTORS.lock().alloc()
}

pub fn vectors_in_use() -> u32 {
    VECTORS.lock().in_use()
}

pub use capos_kcore::acpi::{isa_route, IsaRoute};

/// Bring up interrupt delivery: PICs off, local APIC on, I/O APICs masked.
pub fn init(madt: Option<&Madt>) {
    pic::remap_and_mask();
    lapic::init(madt);
    ioapic::init(madt);
}
