//! The buses a scenario attaches a disk on, and what the kernel calls the
//! disk there: one place for the QEMU device lines and the guest names, so
//! `run-disk`, `cloud-disk` and the storage scenarios agree.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Bus {
    Nvme,
    Virtio,
    /// A `scsi-hd` on its own virtio-scsi controller, as Compute Engine
    /// attaches disks on its E2, N1, N2, N2D, C2 and T2D machine types.
    Scsi,
}

impl Bus {
    /// `DISK_BUS` if set (nvme, virtio or virtio-blk, scsi or
    /// virtio-scsi), else `default`.
    pub fn from_env(default: Bus) -> Result<Bus, String> {
        match std::env::var("DISK_BUS").map(|v| v.trim().to_string()).unwrap_or_default().as_str() {
            "" => Ok(default),
            "nvme" => Ok(Bus::Nvme),
            "virtio" | "virtio-blk" => Ok(Bus::Virtio),
            "scsi" | "virtio-scsi" => Ok(Bus::Scsi),
            other => Err(format!("DISK_BUS={} (want nvme, virtio or scsi)", other)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bus::Nvme => "nvme",
            Bus::Virtio => "virtio",
            Bus::Scsi => "scsi",
        }
    }

    /// The driver the kernel's `devices` names for the disk.
    pub fn driver(self) -> &'static str {
        match self {
            Bus::Nvme => "nvme",
            Bus::Virtio => "virtio-blk",
            Bus::Scsi => "virtio-scsi",
        }
    }

    /// The kernel's name for the first disk on this bus.
    pub fn guest_name(self) -> &'static str {
        match self {
            Bus::Nvme => "nvme0n1",
            Bus::Virtio => "vblk0",
            Bus::Scsi => "sda",
        }
    }

    /// How the kernel's `devices` line states a disk of `sectors`.
    pub fn size_text(self, sectors: u64) -> String {
        match self {
            Bus::Nvme | Bus::Scsi => format!("{} blocks of 512 bytes", sectors),
            Bus::Virtio => format!("{} sectors", sectors),
        }
    }

    /// QEMU `-device` arguments attaching the `-drive` named `drive` (the
    /// NVMe serial is `capos-<serial>`); `boot` makes it the firmware's
    /// first boot option.
    pub fn device_args(self, drive: &str, serial: &str, boot: bool) -> Vec<String> {
        let bi = if boot { ",bootindex=0" } else { "" };
        match self {
            Bus::Nvme => vec!["-device".into(), format!("nvme,serial=capos-{},drive={}{}", serial, drive, bi)],
            Bus::Virtio => vec!["-device".into(), format!("virtio-blk-pci,drive={}{}", drive, bi)],
            Bus::Scsi => vec![
                "-device".into(),
                format!("virtio-scsi-pci,id=scsi-{}", drive),
                "-device".into(),
                format!("scsi-hd,drive={},bus=scsi-{}.0{}", drive, drive, bi),
            ],
        }
    }
}

/// The fixed device latency of the benchmark disks: long enough that the
/// guest always halts (or spins) before a read completes, so every request
/// takes the same path (docs/benchmarks.md).
pub const BENCH_LATENCY_NS: u64 = 100_000;

/// QEMU arguments of a 1 GiB `null-co` disk (reads return zeroes after
/// BENCH_LATENCY_NS) as an NVMe controller or a virtio-blk device.
pub fn null_disk(id: &str, device: &str) -> Vec<String> {
    vec![
        "-blockdev".into(),
        format!("driver=null-co,node-name={},size=1073741824,latency-ns={},read-zeroes=on", id, BENCH_LATENCY_NS),
    ]
    .into_iter()
    .chain(match device {
        "nvme" => Bus::Nvme,
        "scsi" => Bus::Scsi,
        _ => Bus::Virtio,
    }
    .device_args(id, id, false))
    .collect()
}
