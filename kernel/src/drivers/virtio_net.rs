//! virtio-net: a network card behind the `Nic` capability, named `net0`,
//! `net1`, ... in PCI order.
//!
//! Built on `virtio-drivers`' raw net device (`VirtIONetRaw`) over the
//! modern PCI transport (DESIGN.md decision 8): the crate owns the two
//! virtqueues (receive 0, transmit 1) and negotiates `MAC`, `STATUS`,
//! `VERSION_1`, indirect descriptors and event index; the buffers it is
//! given, and which of them the device holds, are ours. What a length or a
//! token means is decided in `capos_kcore::net` and tested on the host;
//! this file moves bytes.
//!
//! - **Devices**: the modern function (1af4:1041) and the transitional one
//!   (1af4:1000) where it offers the modern capabilities, as QEMU's does;
//!   a legacy-only function is logged and left alone. Bind-time log: PCI
//!   address and ids, MAC, MTU (and whether the device offers one), link,
//!   the offered feature bits.
//! - **Buffers**: [`RX_SLOTS`] receive buffers of [`BUF_BYTES`] (a page of
//!   DMA memory each, so the HAL hands them to the device in place) stay
//!   posted; a received frame is copied out to its caller and its buffer
//!   posted again at once. [`TX_SLOTS`] transmit buffers take a copy of a
//!   frame behind the virtio header; transmit returns once the frame is in
//!   the ring and its buffer is taken back on a later call.
//! - **No call waits.** `receive` answers `empty` when the used ring has
//!   nothing; `transmit` answers `busy` when every transmit buffer is in
//!   the device. So nothing a holder passes can hold the kernel or another
//!   client.
//! - **Completions are polled**, as virtio-scsi's: the crate's PCI
//!   transport gives no way to program a queue's MSI-X vector, and writing
//!   the common configuration behind its back would make a second owner of
//!   it. The crate's own notification suppression is turned on so the
//!   device raises no interrupts we would not take.
//! - **Link state** is read live from the config `status` field, through
//!   the same transport the crate owns ([`SharedTransport`]: one transport
//!   behind one lock, the crate's calls and ours in turn).
//! - **Failure**: a completion the bookkeeping does not expect (the ring
//!   out of step) resets the device (status 0 stops its DMA) and marks the
//!   NIC failed; every later transmit and receive is `io` with the reason.

use super::dma::{DmaBuffer, KernelHal};
use super::virtio::transport_of;
use crate::pci;
use crate::sync::{classes, Lock};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_serve::nic::{NicCounters, NicInfo, NicServer, Received};
use capos_kcore::net::{self, Counters, Slots};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::PhysAddr;

/// Descriptors per virtqueue: one per buffer.
const QUEUE_SIZE: usize = 16;
const RX_SLOTS: usize = 16;
const TX_SLOTS: usize = 16;
/// Bytes of each buffer the device may use: the virtio header and a frame
/// of the largest MTU this driver uses, with room to spare (the crate
/// wants at least 1526 for a receive buffer).
const BUF_BYTES: usize = 2048;
/// Config space offsets (virtio 1.2, 5.1.4).
const CONFIG_STATUS: usize = 6;
const CONFIG_MTU: usize = 10;

/// The one PCI transport of a device: the crate's net device drives it
/// (queues, features, notifications) and [`VirtioNic::link_up`] reads the
/// config `status` through it; each call takes the lock for that call only.
#[derive(Clone)]
pub struct SharedTransport(Arc<Lock<PciTransport>>);

impl Transport for SharedTransport {
    fn device_type(&self) -> DeviceType {
        self.0.lock().device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.lock().read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.lock().write_driver_features(driver_features)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.0.lock().max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.0.lock().notify(queue)
    }
    fn get_status(&self) -> DeviceStatus {
        self.0.lock().get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.0.lock().set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.0.lock().set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.0.lock().requires_legacy_layout()
    }
    fn queue_set(&mut self, queue: u16, size: u32, descriptors: PhysAddr, driver_area: PhysAddr, device_area: PhysAddr) {
        self.0.lock().queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.0.lock().queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.lock().queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.0.lock().ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.0.lock().read_config_generation()
    }
    fn read_config_space<T: zerocopy::FromBytes + zerocopy::IntoBytes>(&self, offset: usize) -> virtio_drivers::Result<T> {
        self.0.lock().read_config_space(offset)
    }
    fn write_config_space<T: zerocopy::IntoBytes + zerocopy::Immutable>(&mut self, offset: usize, value: T) -> virtio_drivers::Result<()> {
        self.0.lock().write_config_space(offset, value)
    }
}

/// The driver's state, under the NIC's lock.
struct Rings {
    dev: VirtIONetRaw<KernelHal, SharedTransport, QUEUE_SIZE>,
    rx: Vec<DmaBuffer>,
    rx_slots: Slots<RX_SLOTS>,
    tx: Vec<DmaBuffer>,
    /// Bytes handed to the device from each transmit buffer (the crate
    /// wants the same slice back when it completes).
    tx_len: [usize; TX_SLOTS],
    tx_slots: Slots<TX_SLOTS>,
    counters: Counters,
    /// Why the device was stopped, once it was.
    failed: Option<String>,
}

pub struct VirtioNic {
    pub name: String,
    /// `0000:00:03.0 1af4:1041 modern`, for `devices`.
    pub pci: String,
    mac: [u8; 6],
    mtu: u16,
    features: u64,
    transport: SharedTransport,
    rings: Lock<Rings>,
}

fn io(message: String) -> CapError {
    CapError { code: ErrorCode::Io, message }
}

impl Rings {
    fn rx_buf(&mut self, slot: usize) -> &mut [u8] {
        &mut self.rx[slot].as_mut_slice()[..BUF_BYTES]
    }

    /// Give receive buffer `slot` to the device.
    fn post_rx(&mut self, slot: usize) -> Result<(), String> {
        let buf: *mut [u8] = self.rx_buf(slot);
        // SAFETY: the buffer is DMA memory this NIC owns for its lifetime;
        // nothing reads or writes it until the device returns its token
        // (`receive`, which passes the same slice to `receive_complete`).
        let token = unsafe { self.dev.receive_begin(&mut *buf) }.map_err(|e| format!("posting receive buffer {slot}: {e:?}"))?;
        self.rx_slots.given(slot, token).map_err(|e| e.to_string())
    }

    /// Take back every transmit buffer the device has finished with.
    fn reap_tx(&mut self) -> Result<(), String> {
        while let Some(token) = self.dev.poll_transmit() {
            let slot = self.tx_slots.completed(token).map_err(|e| format!("transmit ring: {e}"))?;
            let len = self.tx_len[slot];
            let buf: *const [u8] = &self.tx[slot].as_slice()[..len];
            // SAFETY: the slice given to `transmit_begin` for this token.
            unsafe { self.dev.transmit_complete(token, &*buf) }.map_err(|e| format!("transmit ring: completing token {token}: {e:?}"))?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), CapError> {
        match &self.failed {
            Some(why) => Err(io(format!("the device was stopped: {why}"))),
            None => Ok(()),
        }
    }
}

impl VirtioNic {
    /// Stop the device for good: reset it (no more DMA into our buffers).
    fn fail(&self, r: &mut Rings, why: String, rx: bool) -> CapError {
        log::error!("{}: {}; device reset, no further frames", self.name, why);
        if rx {
            r.counters.rx_failed();
        } else {
            r.counters.tx_failed();
        }
        self.transport.0.lock().set_status(DeviceStatus::empty());
        r.failed = Some(why.clone());
        io(why)
    }

    pub fn link_up(&self) -> bool {
        let status = if self.features & net::FEATURE_STATUS != 0 { self.transport.read_config_space::<u16>(CONFIG_STATUS).unwrap_or(0) } else { 0 };
        net::link_up(self.features, status)
    }

    pub fn mac_text(&self) -> String {
        net::format_mac(self.mac)
    }

    pub fn mtu(&self) -> u16 {
        self.mtu
    }
}

impl NicServer for VirtioNic {
    fn info(&self) -> NicInfo {
        NicInfo { mac: self.mac, mtu: self.mtu, link_up: self.link_up(), max_frame: net::max_frame(self.mtu) as u32 }
    }

    fn transmit(&self, frame: &[u8]) -> Result<(), CapError> {
        let mut guard = self.rings.lock();
        let r: &mut Rings = &mut guard;
        if let Err(e) = net::check_tx_frame(frame.len(), self.mtu) {
            r.counters.tx_dropped();
            return Err(CapError { code: ErrorCode::InvalidArgument, message: e.to_string() });
        }
        r.check()?;
        if let Err(why) = r.reap_tx() {
            return Err(self.fail(r, why, false));
        }
        let Some(slot) = r.tx_slots.free() else {
            return Err(CapError::new(ErrorCode::Busy, "every transmit buffer is in the device; try again"));
        };
        let buf = &mut r.tx[slot].as_mut_slice()[..BUF_BYTES];
        let header = match r.dev.fill_buffer_header(buf) {
            Ok(h) => h,
            Err(e) => return Err(self.fail(r, format!("virtio header: {e:?}"), false)),
        };
        let len = header + frame.len();
        r.tx[slot].as_mut_slice()[header..len].copy_from_slice(frame);
        let buf: *const [u8] = &r.tx[slot].as_slice()[..len];
        // SAFETY: DMA memory this NIC owns; not touched again until the
        // device returns the token (`reap_tx` passes the same slice back).
        let token = match unsafe { r.dev.transmit_begin(&*buf) } {
            Ok(t) => t,
            Err(e) => return Err(self.fail(r, format!("transmit: {e:?}"), false)),
        };
        r.tx_len[slot] = len;
        if let Err(e) = r.tx_slots.given(slot, token) {
            return Err(self.fail(r, format!("transmit ring: {e}"), false));
        }
        r.counters.sent(frame.len());
        Ok(())
    }

    fn receive(&self, out: &mut [u8]) -> Result<Received, CapError> {
        let mut r = self.rings.lock();
        r.check()?;
        // At most one pass over the ring: a device that fills it with
        // frames we drop cannot keep this call here.
        for _ in 0..RX_SLOTS {
            let Some(token) = r.dev.poll_receive() else { return Ok(Received::Empty) };
            let slot = match r.rx_slots.completed(token) {
                Ok(s) => s,
                Err(e) => return Err(self.fail(&mut r, format!("receive ring: {e}"), true)),
            };
            let buf: *mut [u8] = r.rx_buf(slot);
            // SAFETY: the slice `post_rx` gave the device for this token.
            let done = unsafe { r.dev.receive_complete(token, &mut *buf) };
            let frame = match done {
                Ok((header, len)) => net::check_rx_used(header + len, header, BUF_BYTES, self.mtu).map(|f| (header, f)),
                // The crate's only error after taking the buffer back: a
                // used length shorter than the virtio header.
                Err(virtio_drivers::Error::IoError) => Err(net::RxDrop::Runt { used: 0 }),
                Err(e) => return Err(self.fail(&mut r, format!("receive ring: completing token {token}: {e:?}"), true)),
            };
            if let Ok((header, len)) = frame {
                out[..len].copy_from_slice(&r.rx_buf(slot)[header..header + len]);
                r.counters.received(len);
            } else if let Err(drop) = frame {
                r.counters.rx_dropped();
                log::debug!("{}: received frame dropped: {}", self.name, drop);
            }
            if let Err(why) = r.post_rx(slot) {
                return Err(self.fail(&mut r, why, true));
            }
            if let Ok((_, len)) = frame {
                return Ok(Received::Frame(len));
            }
        }
        Ok(Received::Empty)
    }

    fn counters(&self) -> NicCounters {
        self.rings.lock().counters
    }
}

/// Bind every virtio-net function (modern 1af4:1041, transitional 1af4:1000).
pub fn probe() {
    let Some(p) = pci::get() else { return };
    for dev in p.devices.iter().filter(|d| d.vendor == 0x1af4 && (d.device == 0x1041 || d.device == 0x1000)) {
        let kind = if dev.device == 0x1041 { "modern" } else { "transitional" };
        let Some(mut transport) = transport_of(dev, "virtio-net") else { continue };
        if transport.device_type() != DeviceType::Network {
            continue;
        }
        let name = net::nic_name(super::net::count());
        let features = transport.read_device_features();
        match net::effective_mtu(offered_mtu(features, &transport)) {
            Ok(mtu) => {
                let shared = SharedTransport(Arc::new(Lock::new(&classes::NET_TRANSPORT, transport)));
                match bring_up(name.clone(), format!("{} {:04x}:{:04x} {}", dev.address(), dev.vendor, dev.device, kind), mtu, features, shared) {
                    Ok(nic) => {
                        log::info!(
                            "virtio-net {} ({:04x}:{:04x}, {}): {} mac {}, mtu {} ({}), link {}, device features {:#x}, completions polled",
                            dev.address(),
                            dev.vendor,
                            dev.device,
                            kind,
                            name,
                            nic.mac_text(),
                            mtu,
                            match offered_mtu(features, &nic.transport) {
                                Some(m) => format!("the device offers {m}"),
                                None => String::from("the device offers none"),
                            },
                            if nic.link_up() { "up" } else { "down" },
                            features
                        );
                        super::net::register(Arc::new(nic));
                        super::claim(&dev.func);
                    }
                    Err(e) => log::warn!("virtio-net {}: initialisation failed: {}", dev.address(), e),
                }
            }
            Err(e) => log::warn!("virtio-net {} ({:04x}:{:04x}): not bound: {}", dev.address(), dev.vendor, dev.device, e),
        }
    }
}

fn offered_mtu<T: Transport>(features: u64, t: &T) -> Option<u16> {
    if features & net::FEATURE_MTU == 0 {
        return None;
    }
    t.read_config_space::<u16>(CONFIG_MTU).ok()
}

fn bring_up(name: String, pci: String, mtu: u16, features: u64, transport: SharedTransport) -> Result<VirtioNic, String> {
    let mut dev = VirtIONetRaw::<KernelHal, _, QUEUE_SIZE>::new(transport.clone()).map_err(|e| format!("{e:?}"))?;
    dev.disable_interrupts();
    let mac = dev.mac_address();
    let buffers = || (0..RX_SLOTS.max(TX_SLOTS)).map(|_| DmaBuffer::new(1)).collect::<Option<Vec<_>>>().ok_or("out of memory for packet buffers");
    let rx = buffers()?;
    let tx = buffers()?;
    let mut rings = Rings {
        dev,
        rx: rx.into_iter().take(RX_SLOTS).collect(),
        rx_slots: Slots::default(),
        tx: tx.into_iter().take(TX_SLOTS).collect(),
        tx_len: [0; TX_SLOTS],
        tx_slots: Slots::default(),
        counters: Counters::default(),
        failed: None,
    };
    for slot in 0..RX_SLOTS {
        rings.post_rx(slot)?;
    }
    Ok(VirtioNic { name, pci, mac, mtu, features, transport, rings: Lock::new(&classes::NET_DEVICE, rings) })
}
