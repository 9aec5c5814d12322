//! The stat cache: a file is read once, then recognised by size/mtime/ctime/inode, across
//! hasher instances; a change is re-read; folders hash by manifest.

use super::support::{standard_plan, Fixture};
use peftc::exec::FileHasher;

#[test]
fn the_stat_cache_hashes_a_file_once_and_rehashes_after_a_change() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("weights.bin");
    std::fs::write(&file, vec![7u8; 1 << 20]).expect("write");
    let store = dir.path().join("stat-cache.json");

    let hasher = FileHasher::open(&store);
    let first = hasher.hash(&file).expect("hash");
    assert_eq!(
        first.as_str(),
        blake3::hash(&vec![7u8; 1 << 20]).to_hex().as_str()
    );
    assert_eq!(hasher.hash(&file).expect("hash"), first);
    assert_eq!(hasher.files_read(), 1);
    hasher.save().expect("save");

    let again = FileHasher::open(&store);
    assert_eq!(again.hash(&file).expect("hash"), first);
    assert_eq!(
        again.files_read(),
        0,
        "a fresh hasher must answer from the saved stat cache"
    );

    std::fs::write(&file, vec![8u8; 1 << 20]).expect("rewrite, same size");
    let changed = again.hash(&file).expect("hash");
    assert_ne!(changed, first);
    assert_eq!(again.files_read(), 1);
}

#[test]
fn a_folder_hashes_by_its_files_and_their_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = dir.path().join("model");
    std::fs::create_dir_all(model.join("sub")).expect("mkdir");
    std::fs::write(model.join("config.json"), "{}").expect("write");
    std::fs::write(model.join("sub/w.bin"), "w").expect("write");
    let hasher = FileHasher::in_memory();
    let a = hasher.hash(&model).expect("hash");
    std::fs::rename(model.join("sub/w.bin"), model.join("sub/v.bin")).expect("rename");
    let b = hasher.hash(&model).expect("hash");
    assert_ne!(a, b);
    std::fs::rename(model.join("sub/v.bin"), model.join("sub/w.bin")).expect("rename back");
    assert_eq!(hasher.hash(&model).expect("hash"), a);
}

#[test]
fn a_fully_cached_run_reads_no_file_again() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    fx.run(&plan);
    let cache = fx.cache();
    let exec = super::support::executor(fx.counter.clone());
    let report = peftc::exec::run(&plan, &cache, &fx.config(), &exec).expect("run");
    assert_eq!(report.executed().len(), 0);
    // Inputs and cache entries were all verified through the stat cache.
    assert_eq!(cache.hasher().files_read(), 0);
}

#[test]
fn publishing_an_entry_reads_each_output_once() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let cache = fx.cache();
    let exec = super::support::executor(fx.counter.clone());
    peftc::exec::run(&plan, &cache, &fx.config(), &exec).expect("run");
    // Only the three input files go through the stat cache's reader: outputs are hashed once
    // when published and recorded by stat, so verifying entries reads nothing more.
    assert_eq!(cache.hasher().files_read(), 3);
}
