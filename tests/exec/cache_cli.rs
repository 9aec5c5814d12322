//! `peftc cache ls|gc|rm` through the real binary, on a cache filled by a run.

use super::support::{standard_plan, Fixture};
use peftc::exec::Lockfile;
use std::process::Command;

fn peftc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
        .args(args)
        .output()
        .expect("run peftc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cache_ls_gc_and_rm() {
    let fx = Fixture::new();
    let plan = standard_plan("+", "");
    let lock = fx.write_lock(&plan, &fx.run(&plan));
    // Changing join's separator makes two more entries that the old lock does not reference.
    fx.run(&standard_plan("*", ""));
    let dir = fx.cache_dir();
    let dir = dir.to_str().expect("utf-8 path");

    let (code, out, err) = peftc(&["cache", "ls", "--cache-dir", dir]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("8 entries, ")
            || out
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("8 entries, ")),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("  concat  ")).count(),
        5,
        "{out}"
    );

    let lock_path = fx.lock_path();
    let lock_arg = lock_path.to_str().expect("utf-8");
    let (code, out, _) = peftc(&[
        "cache",
        "gc",
        "--cache-dir",
        dir,
        "--lock",
        lock_arg,
        "--dry-run",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("would remove 2 entries, ")),
        "{out}"
    );
    let (code, out, _) = peftc(&["cache", "gc", "--cache-dir", dir, "--lock", lock_arg]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("removed 2 entries, ")),
        "{out}"
    );
    let cache = fx.cache();
    let left: Vec<String> = cache
        .list()
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    let mut kept: Vec<String> = lock.keys().map(|k| k.to_string()).collect();
    kept.sort();
    let mut left_sorted = left.clone();
    left_sorted.sort();
    assert_eq!(left_sorted, kept);

    // Nothing is old enough for --older-than 1d; gc without a criterion is refused.
    let (_, out, _) = peftc(&["cache", "gc", "--cache-dir", dir, "--older-than", "1d"]);
    assert!(out.starts_with("removed 0 entries"), "{out}");
    let (code, _, err) = peftc(&["cache", "gc", "--cache-dir", dir]);
    assert_eq!(code, 2);
    assert!(err.contains("--lock"), "{err}");

    let join_key = Lockfile::read(&lock_path)
        .expect("read")
        .expect("lock")
        .stages["join"]
        .key
        .to_string();
    let (code, _, err) = peftc(&["cache", "rm", "--cache-dir", dir, "zz"]);
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "error: `zz` matches no entry; give a longer key prefix\n"
        )
    );
    let (code, out, _) = peftc(&["cache", "rm", "--cache-dir", dir, &join_key[..10]]);
    assert_eq!(code, 0);
    assert!(out.starts_with("removed 1 entries"), "{out}");
    let (code, out, _) = peftc(&["cache", "rm", "--cache-dir", dir, "--all"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("removed 5 entries"), "{out}");
}
