//! The image-building commands.

use super::{build_time, source_date_epoch, CommandResult, Failure, Options};
use crate::host_tree::read_host_tree;
use capos_storage::readonly_fs::build_image;
use std::path::Path;

pub fn build(options: Options) -> CommandResult {
    let output = options
        .output
        .clone()
        .ok_or_else(|| Failure::usage("missing -o/--output FILE"))?;
    let image = match options.mode.as_str() {
        "--readonly-fs" => {
            let dir = options.readonly_dir.as_deref().unwrap_or_default();
            let tree = read_host_tree(Path::new(dir), source_date_epoch()?).map_err(Failure::usage)?;
            build_image(&tree, build_time()?).map_err(|e| Failure::storage("building CAPOSRO1", e))?
        }
        other => return Err(Failure::usage(format!("{other}: not implemented yet"))),
    };
    std::fs::write(&output, &image).map_err(|e| Failure::usage(format!("{output}: {e}")))?;
    Ok(())
}
