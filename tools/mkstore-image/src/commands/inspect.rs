//! `inspect IMG`: what is in an image, in a stable, readable form.

use super::image::{detect, open_readonly, open_store, open_writable, ImageKind, StoreView};
use super::{format_time, CommandResult, Failure};
use crate::kv_file::escape;
use capos_storage::superblock::SuperblockHeader;
use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};

pub fn inspect(bytes: Vec<u8>) -> CommandResult {
    let blocks = (bytes.len() / 512) as u64;
    match detect(&bytes)? {
        ImageKind::ReadOnlyFs => {
            let mut fs = open_readonly(bytes)?;
            print_header("CAPOSRO1 read-only filesystem", fs.header());
            println!("build time: {}", format_time(fs.geometry().build_time));
            println!("nodes: {}", fs.node_count());
            print_tree(&mut fs).map_err(|e| Failure::storage("CAPOSRO1", e))
        }
        ImageKind::WritableFs => inspect_writable(bytes, 0),
        ImageKind::Store => inspect_store(&mut open_store(bytes, blocks)?),
        ImageKind::Colocated(layout) => {
            println!("co-located image: CAPOSST1 at block 0 ({} blocks), CAPOSWF1 at block {} ({} blocks)", layout.store_blocks, layout.fs_start, layout.fs_blocks);
            println!("--- store");
            inspect_store(&mut open_store(bytes.clone(), layout.store_blocks)?)?;
            println!("--- filesystem");
            inspect_writable(bytes, layout.fs_start)
        }
    }
}

fn inspect_writable(bytes: Vec<u8>, start: u64) -> CommandResult {
    let mut fs = open_writable(bytes, start)?;
    print_header("CAPOSWF1 writable filesystem", fs.header());
    let g = *fs.geometry();
    println!("generation: {}", fs.generation());
    println!("nodes: {} of {}", fs.live_nodes(), g.node_capacity);
    println!("data blocks: {} ({} free)", g.data_blocks, fs.free_blocks());
    print_tree(&mut fs).map_err(|e| Failure::storage("CAPOSWF1", e))
}

fn inspect_store(store: &mut StoreView) -> CommandResult {
    print_header("CAPOSST1 key/value store", store.header());
    let g = *store.geometry();
    println!("generation: {}", store.generation());
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
pub fn print_tree<F: FileSystem>(fs: &mut F) -> Result<(), StorageError> {
    let root = fs.root();
    print_node(fs, "/", root)?;
    walk(fs, root, String::new())
}

fn print_node<F: FileSystem>(fs: &mut F, path: &str, node: NodeHandle) -> Result<(), StorageError> {
    let stat = fs.stat(node)?;
    let kind = if stat.kind == NodeKind::Directory { "dir " } else { "file" };
    println!(
        "{kind} {path} size={} created={} modified={}",
        stat.size,
        format_time(stat.created),
        format_time(stat.modified)
    );
    Ok(())
}

fn walk<F: FileSystem>(fs: &mut F, dir: NodeHandle, prefix: String) -> Result<(), StorageError> {
    for entry in fs.list(dir)? {
        let path = format!("{prefix}/{}", entry.name);
        let child = match entry.kind {
            NodeKind::Directory => fs.sub(dir, &entry.name)?,
            NodeKind::File => fs.open(dir, &entry.name)?,
        };
        print_node(fs, &path, child)?;
        if entry.kind == NodeKind::Directory {
            walk(fs, child, path)?;
        }
    }
    Ok(())
}
