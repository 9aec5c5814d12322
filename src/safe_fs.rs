//! Opening files that a user handed to peftc (model folders, data, GGUF files) without hanging:
//! every such file is checked to be a regular file (links followed) before it is opened, so a
//! FIFO, a socket or a device such as `/dev/zero` is refused with an error naming what it is
//! instead of blocking or reading forever; whole-file reads stop at a size limit.
//!
//! Errors are [`std::io::Error`]s of kind `InvalidInput`, so callers keep attaching the path as
//! they do for any other I/O error. It must not be used for peftc's own files under `.peft/`
//! (those are written by peftc and verified by the cache).

use std::fs::{File, Metadata};
use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// The largest JSON metadata file read whole (`config.json`, `tokenizer_config.json`,
/// `adapter_config.json`, index files).
pub const JSON_LIMIT: u64 = 64 << 20;
/// The largest `tokenizer.json` read whole.
pub const TOKENIZER_LIMIT: u64 = 1 << 30;

/// The metadata of `path` when it is a regular file (after following links), else an error
/// saying what it is.
pub fn regular_file(path: &Path) -> std::io::Result<Metadata> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(meta);
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{} is {}, not a regular file; peftc reads models and data only from regular files",
            path.display(),
            kind(&meta)
        ),
    ))
}

/// Opens `path` for reading once it is known to be a regular file; returns it with its size.
pub fn open_regular(path: &Path) -> std::io::Result<(File, u64)> {
    regular_file(path)?;
    let file = File::open(path)?;
    // The path may have changed between the check and the open: check what was opened.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} is {}, not a regular file", path.display(), kind(&meta)),
        ));
    }
    Ok((file, meta.len()))
}

/// The whole of the regular file `path`, refused when it is larger than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let (file, len) = open_regular(path)?;
    if len > limit {
        return Err(too_large(path, len, limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // A file that grows while it is read stops at the limit too.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, limit)?).map_err(|e| {
        Error::new(
            ErrorKind::InvalidData,
            format!(
                "{} is not valid UTF-8 (at byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn too_large(path: &Path, len: u64, limit: u64) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{} has {len} bytes, more than the {limit} bytes peftc reads from such a file",
            path.display()
        ),
    )
}

/// What a file that is not regular is, in words.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        } else if t.is_socket() {
            return "a socket";
        } else if t.is_char_device() {
            return "a character device";
        } else if t.is_block_device() {
            return "a block device";
        }
    }
    "a special file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_by_name() {
        let e = read_limited(Path::new("/dev/zero"), 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("/dev/zero is a character device"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
    }

    #[test]
    fn reads_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_limited(&p, 10).unwrap(), b"0123456789");
        let e = read_limited(&p, 9).unwrap_err();
        assert!(
            e.to_string().contains("has 10 bytes, more than the 9"),
            "{e}"
        );
    }
}
