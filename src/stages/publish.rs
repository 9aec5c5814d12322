//! Publishing an export: the `export` stage builds the export's folder inside its cache entry
//! (`out/export/`); this module puts that folder at the destination the user named, and checks on
//! every run that the destination still holds exactly it.
//!
//! A destination is replaced only when it is peftc's own: a folder whose `peftc.lineage.json`
//! carries the [`MARKER_KEY`] record of an earlier export, holding no file that record does not
//! list. Anything else there (a project folder, a model, a data file, a folder a person made) is
//! refused with [`PublishError`], and [`preflight`] refuses it before any stage runs. The new
//! folder is copied next to the destination under a unique name and renamed into place; the old
//! one is moved aside first and removed only after the new one is in place.
//!
//! It must not delete, move or overwrite anything that is not peftc's by that rule.

use crate::exec::{FileHasher, LINEAGE_FILE};
use crate::plan::Digest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The key of the export record inside `peftc.lineage.json`.
pub const MARKER_KEY: &str = "peftc_export";
/// The version of the export record.
pub const MARKER_FORMAT: u64 = 1;
/// The largest `peftc.lineage.json` read when looking for the marker.
const MARKER_LIMIT: u64 = 64 << 20;

/// Why a destination cannot be (re)written.
#[derive(Debug, Error)]
pub enum PublishError {
    /// Something that is not a peftc export is at the destination.
    #[error("{} {why}; peftc replaces only an export it wrote itself (a folder with its `peftc.lineage.json`), so nothing was written. Move it away or choose another export path", dest.display())]
    Foreign { dest: PathBuf, why: String },
    /// A peftc export whose folder also holds files peftc did not write.
    #[error("{} holds `{file}`, which peftc did not write; peftc does not delete it, so the export was not replaced. Move the file out of the folder and run again", dest.display())]
    ForeignFile { dest: PathBuf, file: String },
    /// Reading, copying or renaming failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
    let path = path.to_path_buf();
    move |source| PublishError::Io { what, path, source }
}

/// What was at a destination.
#[derive(Debug, PartialEq)]
enum Found {
    /// Nothing, or an empty folder.
    Nothing,
    /// An earlier export of peftc; the files it wrote (relative, `/`-separated).
    Ours(BTreeMap<String, String>),
}

/// What [`publish`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    /// The destination already held exactly the export.
    Unchanged,
    /// Nothing was there; the export was written.
    Written,
    /// An earlier export was there but differed (the reason); it was replaced.
    Replaced(String),
}

/// Refuses a destination that [`publish`] could not replace, without writing anything.
pub fn preflight(dest: &Path) -> Result<(), PublishError> {
    match inspect(dest)? {
        Found::Nothing => Ok(()),
        Found::Ours(files) => foreign_file(dest, &files).map(|_| ()),
    }
}

/// Makes `dest` hold exactly the folder `tree` (an export built in the cache).
pub fn publish(tree: &Path, dest: &Path, hasher: &FileHasher) -> Result<Published, PublishError> {
    let replaced = match inspect(dest)? {
        Found::Nothing => None,
        Found::Ours(files) => {
            foreign_file(dest, &files)?;
            match difference(tree, dest, hasher)? {
                None => return Ok(Published::Unchanged),
                why => why,
            }
        }
    };
    install(tree, dest, replaced.is_some())?;
    Ok(match replaced {
        Some(why) => Published::Replaced(why),
        None => Published::Written,
    })
}

/// What [`publish`] would do at `dest`, without doing it: `None` when `dest` already holds
/// exactly `tree`, else the reason it would write (`is missing`, `lost ...`, `... was changed`).
/// Errs as [`publish`] would when `dest` holds something that is not peftc's.
pub fn pending(
    tree: &Path,
    dest: &Path,
    hasher: &FileHasher,
) -> Result<Option<String>, PublishError> {
    match inspect(dest)? {
        Found::Nothing => Ok(Some("is missing".to_string())),
        Found::Ours(files) => {
            foreign_file(dest, &files)?;
            difference(tree, dest, hasher)
        }
    }
}

/// The export record to store in the lineage file of a freshly built export folder: every file
/// under `tree` except the lineage file itself, with its blake3.
pub fn marker(tree: &Path) -> Result<Value, PublishError> {
    let mut files = serde_json::Map::new();
    for rel in list(tree)? {
        if rel == LINEAGE_FILE {
            continue;
        }
        let path = tree.join(&rel);
        let digest = crate::exec::hasher::hash_contents(&path).map_err(|e| PublishError::Io {
            what: "hashing",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        files.insert(rel, Value::String(digest.to_string()));
    }
    Ok(serde_json::json!({
        MARKER_KEY: {
            "format": MARKER_FORMAT,
            "note": "written by peftc; peftc replaces this folder only while it holds no other files",
            "files": files,
        }
    }))
}

/// Looks at `dest` without changing it.
fn inspect(dest: &Path) -> Result<Found, PublishError> {
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(io("reading", dest)(e)),
    };
    let foreign = |why: &str| {
        Err(PublishError::Foreign {
            dest: dest.to_path_buf(),
            why: why.to_string(),
        })
    };
    if meta.file_type().is_symlink() {
        return foreign("is a symbolic link");
    }
    if !meta.is_dir() {
        return foreign("exists and is not a folder");
    }
    let mut entries = std::fs::read_dir(dest).map_err(io("reading", dest))?;
    if entries.next().is_none() {
        return Ok(Found::Nothing);
    }
    let lineage = dest.join(LINEAGE_FILE);
    let bytes = match crate::safe_fs::read_limited(&lineage, MARKER_LIMIT) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return foreign("exists and holds no `peftc.lineage.json`")
        }
        Err(e) => return foreign(&format!("has an unreadable `peftc.lineage.json` ({e})")),
    };
    let record = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get(MARKER_KEY).cloned());
    let files = record
        .as_ref()
        .filter(|r| r["format"].as_u64() == Some(MARKER_FORMAT))
        .and_then(|r| r["files"].as_object())
        .map(|files| {
            files
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        });
    match files {
        Some(files) => Ok(Found::Ours(files)),
        None => foreign(&format!(
            "has a `peftc.lineage.json` without peftc's `{MARKER_KEY}` record (not peftc's, or an \
             export from a peftc that did not record its files: remove that one yourself once)"
        )),
    }
}

/// The first file under `dest` that the earlier export did not write.
fn foreign_file(dest: &Path, files: &BTreeMap<String, String>) -> Result<(), PublishError> {
    match list(dest)?
        .into_iter()
        .find(|rel| rel != LINEAGE_FILE && !files.contains_key(rel))
    {
        Some(file) => Err(PublishError::ForeignFile {
            dest: dest.to_path_buf(),
            file,
        }),
        None => Ok(()),
    }
}

/// Why `dest` does not hold exactly `tree`, or `None` when it does.
fn difference(
    tree: &Path,
    dest: &Path,
    hasher: &FileHasher,
) -> Result<Option<String>, PublishError> {
    let want = list(tree)?;
    let have = list(dest)?;
    if let Some(missing) = want.iter().find(|r| !have.contains(r)) {
        return Ok(Some(format!("lost `{missing}`")));
    }
    if let Some(extra) = have.iter().find(|r| !want.contains(r)) {
        return Ok(Some(format!("holds `{extra}` from an earlier export")));
    }
    for rel in &want {
        if file_hash(hasher, &tree.join(rel))? != file_hash(hasher, &dest.join(rel))? {
            return Ok(Some(format!("`{rel}` was changed")));
        }
    }
    Ok(None)
}

fn file_hash(hasher: &FileHasher, path: &Path) -> Result<Digest, PublishError> {
    let meta = std::fs::symlink_metadata(path).map_err(io("reading", path))?;
    if !meta.is_file() {
        // A link or a special file where the export has a file: never the export's bytes.
        return Ok(Digest::of_bytes(b"not a regular file"));
    }
    hasher.hash_file(path).map_err(|e| PublishError::Io {
        what: "hashing",
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Copies `tree` next to `dest` and renames it into place; an existing `dest` (checked to be
/// peftc's) is moved aside first and removed once the new folder is in place.
fn install(tree: &Path, dest: &Path, replace: bool) -> Result<(), PublishError> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let suffix = crate::exec::unique_suffix();
    let tmp = parent.join(format!(".{name}.peftc-new-{suffix}"));
    if let Err(e) = copy_tree(tree, &tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let result = if replace {
        let old = parent.join(format!(".{name}.peftc-old-{suffix}"));
        std::fs::rename(dest, &old)
            .map_err(io("moving aside", dest))
            .and_then(|()| match std::fs::rename(&tmp, dest) {
                Ok(()) => {
                    let _ = std::fs::remove_dir_all(&old);
                    Ok(())
                }
                Err(e) => {
                    let _ = std::fs::rename(&old, dest);
                    Err(io("writing", dest)(e))
                }
            })
    } else {
        // Renaming a folder over a folder that is not empty fails: what appeared meanwhile stays.
        std::fs::rename(&tmp, dest).map_err(io("writing", dest))
    };
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Copies the folder `src` into `dest` (created), recursively.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), PublishError> {
    std::fs::create_dir_all(dest).map_err(io("creating", dest))?;
    for entry in std::fs::read_dir(src).map_err(io("reading", src))? {
        let entry = entry.map_err(io("reading", src))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        if entry.file_type().map_err(io("reading", &from))?.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(io("copying", &from))?;
        }
    }
    Ok(())
}

/// Every file under `dir` (not following links), relative and `/`-separated, sorted.
fn list(dir: &Path) -> Result<Vec<String>, PublishError> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), PublishError> {
        for entry in std::fs::read_dir(dir).map_err(io("reading", dir))? {
            let entry = entry.map_err(io("reading", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            if entry.file_type().map_err(io("reading", dir))?.is_dir() {
                walk(&entry.path(), &format!("{rel}/"), out)?;
            } else {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_tree(dir: &Path, body: &[u8]) -> PathBuf {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("weights.bin"), body).unwrap();
        std::fs::write(tree.join("sub/a.txt"), b"a").unwrap();
        let m = marker(&tree).unwrap();
        std::fs::write(tree.join(LINEAGE_FILE), m.to_string()).unwrap();
        tree
    }

    #[test]
    fn writes_then_leaves_alone_then_repairs() {
        let dir = tempfile::tempdir().unwrap();
        let tree = export_tree(dir.path(), b"w1");
        let dest = dir.path().join("out/x");
        let h = FileHasher::in_memory();
        assert_eq!(publish(&tree, &dest, &h).unwrap(), Published::Written);
        assert_eq!(publish(&tree, &dest, &h).unwrap(), Published::Unchanged);
        std::fs::write(dest.join("weights.bin"), b"w2").unwrap();
        assert_eq!(
            publish(&tree, &dest, &h).unwrap(),
            Published::Replaced("`weights.bin` was changed".into())
        );
        assert_eq!(std::fs::read(dest.join("weights.bin")).unwrap(), b"w1");
        std::fs::remove_file(dest.join("sub/a.txt")).unwrap();
        assert_eq!(
            publish(&tree, &dest, &h).unwrap(),
            Published::Replaced("lost `sub/a.txt`".into())
        );
        // No temporary folder is left next to the destination.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x")]);
    }

    #[test]
    fn refuses_what_is_not_an_export_of_peftc() {
        let dir = tempfile::tempdir().unwrap();
        let tree = export_tree(dir.path(), b"w1");
        let h = FileHasher::in_memory();
        let project = dir.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("pipeline.peft"), b"x").unwrap();
        let e = publish(&tree, &project, &h).unwrap_err();
        assert!(
            e.to_string().contains("holds no `peftc.lineage.json`"),
            "{e}"
        );
        assert_eq!(std::fs::read(project.join("pipeline.peft")).unwrap(), b"x");
        // A lineage file without the record is not enough.
        std::fs::write(
            project.join(LINEAGE_FILE),
            b"{\"peftc_version\": \"0.1.0\"}",
        )
        .unwrap();
        let e = preflight(&project).unwrap_err();
        assert!(e.to_string().contains("without peftc's"), "{e}");
        // A data file.
        let file = dir.path().join("data.jsonl");
        std::fs::write(&file, b"{}\n").unwrap();
        let e = preflight(&file).unwrap_err();
        assert!(e.to_string().contains("is not a folder"), "{e}");
        // An export with a file the user added.
        let dest = dir.path().join("x");
        publish(&tree, &dest, &h).unwrap();
        std::fs::write(dest.join("notes.md"), b"mine").unwrap();
        let e = publish(&tree, &dest, &h).unwrap_err();
        assert!(matches!(e, PublishError::ForeignFile { ref file, .. } if file == "notes.md"));
        assert_eq!(std::fs::read(dest.join("notes.md")).unwrap(), b"mine");
    }

    #[test]
    fn an_empty_folder_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        let tree = export_tree(dir.path(), b"w1");
        let dest = dir.path().join("empty");
        std::fs::create_dir_all(&dest).unwrap();
        preflight(&dest).unwrap();
        publish(&tree, &dest, &FileHasher::in_memory()).unwrap();
        assert!(dest.join("weights.bin").is_file());
    }
}
