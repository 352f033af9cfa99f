#![no_std]
#![no_main]

use core::arch::asm;
use limine::request::{HhdmRequest, MemoryMapRequest, RequestsEndMarker, RequestsStartMarker};
use limine::BaseRevision;

#[used]
#[link_section = ".requests_start_marker"]
static START: RequestsStartMarker = RequestsStartMarker::new();
#[used]
#[link_section = ".requests"]
static BASE_REVISION: BaseRevision = BaseRevision::new();
#[used]
#[link_section = ".requests"]
static HHDM: HhdmRequest = HhdmRequest::new();
#[used]
#[link_section = ".requests"]
static MEMMAP: MemoryMapRequest = MemoryMapRequest::new();
#[used]
#[link_section = ".requests_end_marker"]
static END: RequestsEndMarker = RequestsEndMarker::new();

fn outb(port: u16, v: u8) { unsafe { asm!("out dx, al", in("dx") port, in("al") v) } }

fn puts(s: &str) { for b in s.bytes() { outb(0x3f8, b); } }

#[no_mangle]
extern "C" fn kernel_entry() -> ! {
    puts("capos kernel starting\r\n");
    if BASE_REVISION.is_supported() { puts("base revision ok\r\n"); }
    if let Some(m) = MEMMAP.get_response() { let n = m.entries().len(); puts(if n > 3 { "memmap ok\r\n" } else { "memmap small\r\n" }); }
    if HHDM.get_response().is_some() { puts("hhdm ok\r\n"); }
    outb(0xf4, 0x10);
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }
