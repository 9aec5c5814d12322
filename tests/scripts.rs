//! The setup scripts never change what a user already has: `scripts/install-hf-cache.sh` fills
//! an empty Hugging Face cache, and leaves an existing entry for the model (another revision, a
//! user's own download) byte for byte as it was, saying so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const REV: &str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
const ENTRY: &str = "hub/models--sentence-transformers--all-MiniLM-L6-v2";

/// Every file, link and folder under `dir` with its content (links: their target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if t.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, target.to_string_lossy().as_bytes().to_vec());
            } else if t.is_dir() {
                out.insert(rel, Vec::new());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Runs the script with its inputs and outputs under `root`; returns (success, stdout).
fn install(root: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-hf-cache.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("HF_HOME", root.join("hf"))
        .env("PEFTC_TEST_ASSETS", root.join("assets"))
        .env("PEFTC_EXAMPLES_DIR", root.join("examples"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn fake_assets(root: &Path) {
    let m = root.join("assets/all-MiniLM-L6-v2");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("model.safetensors"), b"weights").unwrap();
    std::fs::write(m.join("config.json"), b"{}").unwrap();
}

#[test]
fn install_hf_cache_fills_an_empty_cache_and_is_idempotent() {
    let root = tempfile::tempdir().unwrap();
    fake_assets(root.path());
    let (ok, text) = install(root.path());
    assert!(ok, "{text}");
    let entry = root.path().join("hf").join(ENTRY);
    assert_eq!(
        std::fs::read_to_string(entry.join("refs/main")).unwrap(),
        REV
    );
    assert_eq!(
        std::fs::read(entry.join(format!("snapshots/{REV}/model.safetensors"))).unwrap(),
        b"weights"
    );
    // Nothing temporary is left in the cache.
    let hub: Vec<_> = std::fs::read_dir(root.path().join("hf/hub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(hub.len(), 1, "{hub:?}");
    let before = snapshot(&root.path().join("hf"));
    let (ok, text) = install(root.path());
    assert!(ok, "{text}");
    assert!(text.contains("already in"), "{text}");
    assert_eq!(before, snapshot(&root.path().join("hf")));
}

#[test]
fn install_hf_cache_leaves_a_users_entry_and_files_alone() {
    let root = tempfile::tempdir().unwrap();
    fake_assets(root.path());
    let entry = root.path().join("hf").join(ENTRY);
    std::fs::create_dir_all(entry.join("refs")).unwrap();
    std::fs::create_dir_all(entry.join("snapshots/user0rev")).unwrap();
    std::fs::write(entry.join("refs/main"), "user0rev").unwrap();
    std::fs::write(
        entry.join("snapshots/user0rev/model.safetensors"),
        b"the user's weights",
    )
    .unwrap();
    // A file of the user's at the GGUF link's path.
    let models = root.path().join("examples/models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("SmolLM2-135M-Instruct.Q4_1.gguf"), b"mine").unwrap();
    let before = snapshot(root.path());
    let (ok, text) = install(root.path());
    assert!(ok, "{text}");
    assert!(
        text.contains("left unchanged") && text.contains("refs/main: user0rev"),
        "{text}"
    );
    assert_eq!(
        before,
        snapshot(root.path()),
        "the script changed the user's files"
    );
}
