//! The Linux guest of `make bench-linux`: Debian bookworm's kernel package
//! and busybox-static, fetched with `apt-get download` into
//! target/bench-linux/ (never installed on the host), unpacked with
//! dpkg-deb, and an initramfs (cpio newc, written here) holding busybox,
//! `tools/bench-linux/init`, the NVMe, virtio-pci and virtio-net modules
//! in load order, `tools/bench-linux/bench.c` built with `gcc -static` and
//! the files of make bench-net ([`WWW`]) under /www.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A file both guests serve in make bench-net: `size` bytes of the test
/// pattern `seed` (capos_abi::pattern, what the shell's `fill` writes).
pub struct WwwFile {
    pub name: &'static str,
    pub size: usize,
    pub seed: u64,
}

impl WwwFile {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.size];
        capos_abi::pattern::fill(self.seed, 0, &mut b);
        b
    }
}

/// make bench-net's files: one of 1 MiB (the per-byte figure) and one
/// small (the per-request figure).
pub const WWW: &[WwwFile] = &[WwwFile { name: "big.bin", size: 1 << 20, seed: 5 }, WwwFile { name: "small.bin", size: 100, seed: 6 }];

pub struct LinuxGuest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// What was booted, for the results file.
    pub description: String,
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.stderr(Stdio::inherit()).output().map_err(|e| format!("{}: cannot run: {}", what, e))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", what, out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned package linux-image-amd64 depends on.
fn kernel_package() -> Result<String, String> {
    if let Ok(p) = std::env::var("LINUX_IMAGE_PACKAGE") {
        if !p.trim().is_empty() {
            return Ok(p.trim().to_string());
        }
    }
    let text = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]), "apt-cache depends linux-image-amd64")?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_string)
        .ok_or_else(|| "apt-cache knows no linux-image-*-amd64 behind linux-image-amd64 (is this Debian bookworm with apt lists? run apt-get update)".into())
}

/// `dir/<package>_*.deb`, downloaded with `apt-get download` if missing.
fn deb(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let find = || -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                n.starts_with(&format!("{}_", package)) && n.ends_with(".deb")
            })
            .collect();
        found.sort();
        found.pop()
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    println!("bench-linux: apt-get download {}", package);
    run(Command::new("apt-get").arg("download").arg(package).current_dir(dir), &format!("apt-get download {}", package))?;
    find().ok_or_else(|| format!("apt-get download {} left no .deb in {}", package, dir.display()))
}

/// Extract `members` (tar wildcards) of a .deb's data into `into`.
fn extract(deb: &Path, into: &Path, members: &[&str]) -> Result<(), String> {
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run dpkg-deb: {}", e))?;
    let status = Command::new("tar")
        .arg("-x")
        .arg("--wildcards")
        .arg("-C")
        .arg(into)
        .args(members)
        .stdin(dpkg.stdout.take().unwrap())
        .status()
        .map_err(|e| format!("cannot run tar: {}", e))?;
    let d = dpkg.wait().map_err(|e| e.to_string())?;
    if !status.success() || !d.success() {
        return Err(format!("extracting {:?} from {} failed", members, deb.display()));
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// A module's name as the kernel spells it (`nvme-core.ko` -> `nvme_core`).
pub fn module_name(file: &str) -> String {
    file.trim_end_matches(".ko").replace('-', "_")
}

/// The `depends=` entry of a module's .modinfo strings.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else { return Vec::new() };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').filter(|s| !s.is_empty()).map(|s| s.replace('-', "_")).collect()
}

/// `root` and everything it depends on, dependencies first.
pub fn load_order(root: &str, depends: &dyn Fn(&str) -> Result<Vec<String>, String>) -> Result<Vec<String>, String> {
    fn visit(m: &str, depends: &dyn Fn(&str) -> Result<Vec<String>, String>, seen: &mut Vec<String>, path: &mut Vec<String>) -> Result<(), String> {
        if seen.iter().any(|s| s == m) {
            return Ok(());
        }
        if path.iter().any(|s| s == m) {
            return Err(format!("module dependency cycle through {}", m));
        }
        path.push(m.to_string());
        for d in depends(m)? {
            visit(&d, depends, seen, path)?;
        }
        path.pop();
        seen.push(m.to_string());
        Ok(())
    }
    let mut seen = Vec::new();
    visit(root, depends, &mut seen, &mut Vec::new())?;
    Ok(seen)
}

/// A cpio "newc" archive (what the kernel unpacks as an initramfs).
#[derive(Default)]
pub struct Cpio {
    data: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn header(&mut self, name: &str, mode: u32, size: usize, rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [self.ino, mode, 0, 0, 1, 0, size as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.data.extend_from_slice(b"070701");
        for f in fields {
            self.data.extend_from_slice(format!("{:08x}", f).as_bytes());
        }
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
    }
    fn pad(&mut self) {
        while self.data.len() % 4 != 0 {
            self.data.push(0);
        }
    }
    pub fn dir(&mut self, name: &str) {
        self.header(name, 0o040755, 0, (0, 0));
    }
    pub fn file(&mut self, name: &str, mode: u32, bytes: &[u8]) {
        self.header(name, 0o100000 | mode, bytes.len(), (0, 0));
        self.data.extend_from_slice(bytes);
        self.pad();
    }
    pub fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.header(name, 0o020600, 0, (major, minor));
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, (0, 0));
        self.data
    }
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {}", p.display(), e))
}

pub fn prepare(root: &Path) -> Result<LinuxGuest, String> {
    let dir = root.join("target/bench-linux");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let package = kernel_package()?;
    let kdeb = deb(&dir, &package)?;
    let bdeb = deb(&dir, "busybox-static")?;

    let kroot = dir.join(&package);
    // What is taken from the package: the kernel, NVMe and what it needs
    // (make bench-linux), virtio-pci and virtio-net with theirs (make
    // bench-net). A stamp names what an earlier run extracted, so a
    // changed list is extracted again.
    let mods = ["drivers/nvme/host/*", "lib/*", "crypto/*", "block/*", "arch/x86/crypto/*", "drivers/virtio/*", "drivers/net/virtio_net.ko", "drivers/net/net_failover.ko", "net/core/failover.ko"];
    let mut members = vec!["./boot/vmlinuz-*".to_string()];
    members.extend(mods.iter().map(|m| format!("./lib/modules/*/kernel/{}", m)));
    let stamp = kroot.join(".extracted");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(members.join("\n").as_str()) {
        let list: Vec<&str> = members.iter().map(String::as_str).collect();
        extract(&kdeb, &kroot, &list)?;
        std::fs::write(&stamp, members.join("\n")).map_err(|e| format!("{}: {}", stamp.display(), e))?;
    }
    let kernel = std::fs::read_dir(kroot.join("boot"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().map_or(false, |n| n.to_string_lossy().starts_with("vmlinuz-")))
        .ok_or_else(|| format!("{} holds no boot/vmlinuz-*", kdeb.display()))?;
    let bbroot = dir.join("busybox-static");
    if !bbroot.join("bin/busybox").is_file() {
        extract(&bdeb, &bbroot, &["./bin/busybox"])?;
    }

    // Modules: nvme and what its .modinfo says it needs.
    let mut files = Vec::new();
    walk(&kroot.join("lib/modules"), &mut files);
    let by_name = |m: &str| files.iter().find(|p| p.extension().map_or(false, |e| e == "ko") && module_name(&p.file_name().unwrap().to_string_lossy()) == m).cloned();
    let deps = |m: &str| -> Result<Vec<String>, String> {
        let p = by_name(m).ok_or_else(|| format!("module {} is not in {}", m, kdeb.display()))?;
        Ok(module_depends(&read(&p)?))
    };
    let mut order: Vec<String> = Vec::new();
    for root in ["nvme", "virtio_pci", "virtio_net"] {
        for m in load_order(root, &deps)? {
            if !order.contains(&m) {
                order.push(m);
            }
        }
    }

    // The benchmark program.
    let bench = dir.join("bench");
    let src = root.join("tools/bench-linux/bench.c");
    run(
        Command::new("gcc").args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"]).arg(&bench).arg(&src),
        "gcc -static tools/bench-linux/bench.c (needs Debian's gcc and libc6-dev; run tools/setup.sh)",
    )?;

    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "lib", "lib/modules"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, &read(&bbroot.join("bin/busybox"))?);
    c.file("init", 0o755, &read(&root.join("tools/bench-linux/init"))?);
    c.file("bench", 0o755, &read(&bench)?);
    let mut listing = String::new();
    for m in &order {
        let p = by_name(m).unwrap();
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        c.file(&format!("lib/modules/{}", file), 0o644, &read(&p)?);
        listing.push_str(&file);
        listing.push('\n');
    }
    c.file("lib/modules/load-order", 0o644, listing.as_bytes());
    // What busybox httpd serves in make bench-net: the files capOS's shell
    // writes with `fill` (the same bytes).
    c.dir("www");
    for f in WWW {
        c.file(&format!("www/{}", f.name), 0o644, &f.bytes());
    }
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, c.finish()).map_err(|e| format!("{}: {}", initrd.display(), e))?;

    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    Ok(LinuxGuest {
        description: format!(
            "Debian {} ({}), {} ({}), modules {}, tools/bench-linux/bench.c (gcc -static -O2)",
            package,
            name(&kdeb),
            "busybox-static",
            name(&bdeb),
            order.join(" ")
        ),
        kernel,
        initrd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_depends_are_read() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=nvme-core,t10_pi\0vermagic=6.1\0";
        assert_eq!(module_depends(ko), vec!["nvme_core".to_string(), "t10_pi".to_string()]);
        assert!(module_depends(b"\0depends=\0").is_empty());
        assert!(module_depends(b"nothing").is_empty());
    }

    #[test]
    fn load_order_puts_dependencies_first_and_finds_cycles() {
        let deps = |m: &str| -> Result<Vec<String>, String> {
            Ok(match m {
                "nvme" => vec!["nvme_core".into()],
                "nvme_core" => vec!["t10_pi".into()],
                "t10_pi" => vec!["crc".into()],
                "a" => vec!["b".into()],
                "b" => vec!["a".into()],
                _ => vec![],
            })
        };
        assert_eq!(load_order("nvme", &deps).unwrap(), vec!["crc", "t10_pi", "nvme_core", "nvme"]);
        assert!(load_order("a", &deps).is_err());
        let missing = |_: &str| -> Result<Vec<String>, String> { Err("no such module".into()) };
        assert!(load_order("nvme", &missing).is_err());
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"abc");
        let a = c.finish();
        assert_eq!(&a[..6], b"070701");
        assert_eq!(a.len() % 4, 0);
        // mode field (second) and file size field (seventh).
        assert_eq!(&a[14..22], b"000081ed");
        assert_eq!(&a[54..62], b"00000003");
        let name_at = 110;
        assert_eq!(&a[name_at..name_at + 5], b"init\0");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
