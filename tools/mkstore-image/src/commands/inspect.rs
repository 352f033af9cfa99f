//! `inspect IMG`: what is in an image, in a stable, readable form.

use super::image::{detect, open_readonly, ImageKind};
use super::{format_time, CommandResult, Failure};
use capos_storage::superblock::SuperblockHeader;
use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError};

pub fn inspect(bytes: Vec<u8>) -> CommandResult {
    match detect(&bytes)? {
        ImageKind::ReadOnlyFs => {
            let mut fs = open_readonly(bytes)?;
            print_header("CAPOSRO1 read-only filesystem", fs.header());
            println!("build time: {}", format_time(fs.geometry().build_time));
            println!("nodes: {}", fs.node_count());
            print_tree(&mut fs).map_err(|e| Failure::storage("CAPOSRO1", e))
        }
        _ => Err(Failure::usage("inspect: format not supported yet")),
    }
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
