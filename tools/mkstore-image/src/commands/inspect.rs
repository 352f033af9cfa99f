//! `inspect IMG`: what is in an image, in a stable, readable form.
//!
//! Names are printed escaped (see [`escape_name`]): a name holding an
//! escape sequence or a newline cannot drive the terminal or forge a line.

use super::image::{open, OlderCommit, Opened, StoreView};
use super::walk::{display_path, walk, Visitor};
use super::{format_time, CommandResult, Failure};
use crate::kv_file::escape;
use capos_storage::superblock::SuperblockHeader;
use capos_storage::{FileSystem, NodeHandle, NodeKind};

pub fn inspect(bytes: Vec<u8>, older: OlderCommit) -> CommandResult {
    match open(bytes, older)? {
        Opened::ReadOnly(mut fs) => {
            print_header("CAPOSRO1 read-only filesystem", fs.header());
            println!("build time: {}", format_time(fs.geometry().build_time));
            println!("nodes: {}", fs.node_count());
            print_tree(&mut fs, "CAPOSRO1")
        }
        Opened::Writable(mut fs) => inspect_writable(&mut fs),
        Opened::Store(mut store) => inspect_store(&mut store),
        Opened::Colocated { layout, mut store, mut fs } => {
            println!("co-located image: CAPOSST1 at block 0 ({} blocks), CAPOSWF1 at block {} ({} blocks)", layout.store_blocks, layout.fs_start, layout.fs_blocks);
            println!("--- store");
            inspect_store(&mut store)?;
            println!("--- filesystem");
            inspect_writable(&mut fs)
        }
        Opened::Fat(mut fs) => {
            let g = *fs.geometry();
            let (start, blocks) = fs.volume_extent();
            println!("format: {} (read-only; not a capOS format)", g.fat_type.label());
            println!("volume: blocks {start}..{} of the image", start + blocks);
            println!("clusters: {} of {} bytes", g.cluster_count, g.cluster_bytes);
            println!("times: from the directory entries, read as UTC (modified to 2 s, created to 10 ms)");
            print_tree(&mut fs, g.fat_type.label())
        }
    }
}

fn inspect_writable(fs: &mut super::image::FsView) -> CommandResult {
    print_header("CAPOSWF1 writable filesystem", fs.header());
    let g = *fs.geometry();
    println!("generation: {}", fs.generation());
    println!("nodes: {} of {}", fs.live_nodes(), g.node_capacity);
    println!("data blocks: {} ({} free)", g.data_blocks, fs.free_blocks());
    print_tree(fs, "CAPOSWF1")
}

fn inspect_store(store: &mut StoreView) -> CommandResult {
    print_header("CAPOSST1 key/value store", store.header());
    let g = *store.geometry();
    println!("generation: {}", store.generation());
    println!(
        "commits: {}",
        if store.single_flush() {
            "one flush each (single-flush feature; an unfinished commit is rolled back at mount)"
        } else {
            "data flushed before the record (formatted before the single-flush feature)"
        }
    );
    println!("entries: {} of {} slots used, heap {} of {} bytes", store.entry_count(), g.slot_capacity(), store.heap_used(), g.heap_bytes());
    println!("keys: {} live (store entries carry no timestamps: times unknown)", store.len());
    let entries = store.entries().map_err(|e| Failure::storage("CAPOSST1", e))?;
    for (key, value) in entries {
        println!("key {} size={}", escape(&key), value.len());
    }
    Ok(())
}

pub fn print_header(title: &str, h: &SuperblockHeader) {
    println!("format: {title}");
    println!("version: {}", h.version);
    println!(
        "features: compatible={:#x} ro-compatible={:#x} incompatible={:#x}",
        h.features.compatible, h.features.ro_compatible, h.features.incompatible
    );
    println!("blocks: {} x 512 bytes", h.total_blocks);
}

/// Print every node, depth first, one per line: path, kind, size, times.
fn print_tree<F: FileSystem>(fs: &mut F, format: &str) -> CommandResult {
    walk(fs, format, &mut Printer { format })
}

struct Printer<'a> {
    format: &'a str,
}

impl Printer<'_> {
    fn print<F: FileSystem>(&self, fs: &mut F, path: &[String], node: NodeHandle) -> CommandResult {
        let shown = display_path(path);
        let stat = fs.stat(node).map_err(|e| Failure::storage(&format!("{} {shown}", self.format), e))?;
        let kind = if stat.kind == NodeKind::Directory { "dir " } else { "file" };
        println!(
            "{kind} {shown} size={} created={} modified={}",
            stat.size,
            format_time(stat.created),
            format_time(stat.modified)
        );
        Ok(())
    }
}

impl<F: FileSystem> Visitor<F> for Printer<'_> {
    fn enter_dir(&mut self, fs: &mut F, path: &[String], dir: NodeHandle) -> CommandResult {
        self.print(fs, path, dir)
    }
    fn file(&mut self, fs: &mut F, path: &[String], file: NodeHandle) -> CommandResult {
        self.print(fs, path, file)
    }
}
