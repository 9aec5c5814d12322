//! The file watcher with real file writes: in-place writes, an editor's write-temp-then-rename,
//! a deletion and the file's return, a file created later, and unwatched neighbours ignored.

use peftc::exec::{FileWatcher, WatchBatch, WatchConfig};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Waits (up to 5 s) for a batch satisfying `want`; returns every batch seen meanwhile.
fn wait_for(
    rx: &Receiver<WatchBatch>,
    want: impl Fn(&WatchBatch) -> bool,
) -> (bool, Vec<WatchBatch>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(batch) => {
                let ok = want(&batch);
                seen.push(batch);
                if ok {
                    return (true, seen);
                }
            }
            Err(_) => break,
        }
    }
    (false, seen)
}

fn canon(p: &Path) -> PathBuf {
    std::path::absolute(p).expect("absolute")
}

#[test]
fn the_watcher_reports_saves_renames_deletions_and_returns() {
    let dir = tempfile::tempdir().expect("tmp");
    let pipeline = canon(&dir.path().join("main.peft"));
    let later = canon(&dir.path().join("later.jsonl"));
    let neighbour = dir.path().join("notes.txt");
    std::fs::write(&pipeline, "v1").expect("write");
    let (tx, rx) = channel();
    let config = WatchConfig {
        debounce: Duration::from_millis(50),
    };
    let _watcher = FileWatcher::new(&[pipeline.clone(), later.clone()], config, move |b| {
        let _ = tx.send(b);
    })
    .expect("watch");
    let mut all = Vec::new();

    std::fs::write(&neighbour, "not watched").expect("write");
    std::fs::write(&pipeline, "v2").expect("write");
    let (ok, seen) = wait_for(&rx, |b| b.changed.contains(&pipeline));
    all.extend(seen);
    assert!(ok, "in-place write not seen: {all:?}");

    // An editor's save: write a temporary file, rename it over the target.
    let tmp = dir.path().join(".main.peft.swp");
    std::fs::write(&tmp, "v3").expect("write");
    std::fs::rename(&tmp, &pipeline).expect("rename");
    let (ok, seen) = wait_for(&rx, |b| b.changed.contains(&pipeline));
    all.extend(seen);
    assert!(ok, "rename-into-place not seen: {all:?}");

    std::fs::remove_file(&pipeline).expect("remove");
    let (ok, seen) = wait_for(&rx, |b| b.removed.contains(&pipeline));
    all.extend(seen);
    assert!(ok, "deletion not seen: {all:?}");

    std::fs::write(&pipeline, "v4").expect("write");
    let (ok, seen) = wait_for(&rx, |b| b.changed.contains(&pipeline));
    all.extend(seen);
    assert!(ok, "return of a deleted file not seen: {all:?}");

    std::fs::write(&later, "{}").expect("write");
    let (ok, seen) = wait_for(&rx, |b| b.changed.contains(&later));
    all.extend(seen);
    assert!(
        ok,
        "a file created after the watch started not seen: {all:?}"
    );

    for b in &all {
        for p in b.changed.iter().chain(&b.removed) {
            assert!(
                p == &pipeline || p == &later,
                "unwatched path reported: {p:?}"
            );
        }
        assert!(b.errors.is_empty(), "{:?}", b.errors);
    }
}

#[test]
fn set_paths_moves_the_watch() {
    let a_dir = tempfile::tempdir().expect("tmp");
    let b_dir = tempfile::tempdir().expect("tmp");
    let a = canon(&a_dir.path().join("a.txt"));
    let b = canon(&b_dir.path().join("b.txt"));
    let (tx, rx) = channel();
    let mut watcher = FileWatcher::new(
        std::slice::from_ref(&a),
        WatchConfig::default(),
        move |batch| {
            let _ = tx.send(batch);
        },
    )
    .expect("watch");
    watcher
        .set_paths(std::slice::from_ref(&b))
        .expect("rewatch");
    assert_eq!(watcher.paths(), std::slice::from_ref(&b));
    std::fs::write(&a, "no longer watched").expect("write");
    std::fs::write(&b, "watched").expect("write");
    let (ok, seen) = wait_for(&rx, |batch| batch.changed.contains(&b));
    assert!(ok, "{seen:?}");
    assert!(
        seen.iter().all(|batch| !batch.changed.contains(&a)),
        "{seen:?}"
    );
}
