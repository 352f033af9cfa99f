//! CAPOSRO1: the read-only filesystem image.
//!
//! Why a format of our own: host-built boot and fixture images need a
//! layout the kernel can validate completely at mount (every record
//! checksummed, the tree proven to be a tree) with a few hundred lines of
//! code, and that carries file modification times when the source had them.
//! [`builder`] makes images on the host; [`reader`] mounts them anywhere.

pub mod builder;
pub mod layout;
pub mod reader;

pub use builder::{build_image, SourceNode};
pub use reader::ReadOnlyFs;
