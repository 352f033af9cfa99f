//! The capOS boot-manifest builder (work in progress in this commit).
#![forbid(unsafe_code)]
