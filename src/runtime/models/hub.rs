//! Finding a model folder: a local path, or a repository id in the Hugging Face cache
//! (`$HF_HOME/hub/models--org--name/snapshots/<rev>/`), offline.
//!
//! Never downloads.

use std::path::{Path, PathBuf};

/// The folder of `id_or_path`: the path itself when it is a directory, else the cached
/// snapshot of the repository at `revision` (default `main`) in `cache_dir` (default: the
/// `HF_HOME` cache). `None` when neither exists.
pub fn resolve_model_dir(
    id_or_path: &str,
    revision: Option<&str>,
    cache_dir: Option<&Path>,
) -> Option<PathBuf> {
    let p = Path::new(id_or_path);
    if p.is_dir() {
        return Some(p.to_path_buf());
    }
    let cache = match cache_dir {
        Some(d) => hf_hub::Cache::new(d.to_path_buf()),
        None => hf_hub::Cache::from_env(),
    };
    let repo = hf_hub::Repo::with_revision(
        id_or_path.to_string(),
        hf_hub::RepoType::Model,
        revision.unwrap_or("main").to_string(),
    );
    let config = cache.repo(repo).get("config.json")?;
    config.parent().map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_a_cached_snapshot() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let repo = tmp.path().join("models--org--tiny");
        std::fs::create_dir_all(repo.join("refs"))?;
        std::fs::write(repo.join("refs/main"), "abc123")?;
        let snap = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snap)?;
        std::fs::write(snap.join("config.json"), "{}")?;
        assert_eq!(
            resolve_model_dir("org/tiny", None, Some(tmp.path())),
            Some(snap)
        );
        assert_eq!(
            resolve_model_dir("org/absent", None, Some(tmp.path())),
            None
        );
        assert_eq!(
            resolve_model_dir(&tmp.path().display().to_string(), None, None),
            Some(tmp.path().to_path_buf())
        );
        Ok(())
    }
}
