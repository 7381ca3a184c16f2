//! What jitd accepts at one of its own file names: exactly what it creates there, a plain
//! regular file of root's with one link. Anything else (a planted symlink, FIFO, device, hard
//! link) is never followed or trusted.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// What is wrong with an entry at one of jitd's names, or None for a plain regular file
/// owned by root with one link (the only thing jitd ever leaves there).
pub fn not_ours(meta: &fs::Metadata) -> Option<String> {
    let t = meta.file_type();
    let kind = if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if !t.is_file() {
        "not a regular file"
    } else if meta.nlink() != 1 {
        return Some(format!("a file with {} hard links", meta.nlink()));
    } else if meta.uid() != 0 {
        return Some(format!("a file owned by uid {}", meta.uid()));
    } else {
        return None;
    };
    Some(kind.to_string())
}
