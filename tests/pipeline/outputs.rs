//! Exports through the real binary: destinations that would destroy the project or an input are
//! refused by `check` and leave every file as it was; outside the project is a warning in
//! `check`, an error in `run`, and allowed with `outside_project = true`; a deleted or damaged
//! export is rewritten from the cache and the run says so; a folder peftc did not write is
//! refused before any training.

use super::support::Pipeline;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file and folder under `dir` with the blake3 of its bytes (folders: empty).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, String::new());
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, blake3::hash(&bytes).to_hex().to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn with_export(p: &Pipeline, dest: &str) {
    p.edit(|s| {
        s.replace(
            "export t.a to \"out/a\" as peft",
            &format!("export t.a to {dest} as peft"),
        )
    });
}

#[test]
fn exports_over_the_project_or_its_inputs_are_refused_and_change_nothing() {
    let p = Pipeline::new();
    for (dest, code) in [
        ("\".\"", "E0951"),
        ("\"..\"", "E0951"),
        ("\"\"", "E0950"),
        ("\"model\"", "E0952"),
        ("\"model/tokenizer.json\"", "E0952"),
        ("\"data.jsonl\"", "E0952"),
        ("\"pipeline.peft\"", "E0952"),
        ("\".peft\"", "E0952"),
    ] {
        let text = std::fs::read_to_string(p.dir.path().join("pipeline.peft")).unwrap();
        with_export(&p, dest);
        let before = snapshot(p.dir.path());
        let check = p.peftc("check", "pipeline.peft", &[], 60);
        assert_eq!(check.code, 1, "{dest}: {}", check.stderr);
        assert!(check.stderr.contains(code), "{dest}: {}", check.stderr);
        let run = p.peftc("run", "pipeline.peft", &[], 60);
        assert_eq!(run.code, 1, "{dest}: {}", run.stderr);
        assert!(run.stderr.contains(code), "{dest}: {}", run.stderr);
        assert!(run.ran().is_empty(), "{dest}: {:?}", run.ran());
        assert_eq!(
            before,
            snapshot(p.dir.path()),
            "{dest}: the project changed"
        );
        std::fs::write(p.dir.path().join("pipeline.peft"), text).unwrap();
    }
}

#[test]
fn outside_the_project_is_a_warning_in_check_an_error_in_run_unless_opted_in() {
    let p = Pipeline::new();
    // The project is `proj/`; the model and data sit one level up (reading outside is fine).
    let proj = p.dir.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let text = std::fs::read_to_string(p.dir.path().join("pipeline.peft"))
        .unwrap()
        .replace("local(\"model\")", "local(\"../model\")")
        .replace("jsonl(\"data.jsonl\")", "jsonl(\"../data.jsonl\")")
        .replace("\"out/a\"", "\"../elsewhere/a\"");
    std::fs::write(proj.join("pipeline.peft"), &text).unwrap();
    let check = p.peftc("check", "proj/pipeline.peft", &[], 60);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stderr.contains("W0950"), "{}", check.stderr);
    assert!(
        check.stderr.contains("outside_project = true"),
        "{}",
        check.stderr
    );
    let run = p.peftc("run", "proj/pipeline.peft", &[], 300);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("error[W0950]") || run.stderr.contains("W0950"),
        "{}",
        run.stderr
    );
    assert!(run.ran().is_empty(), "{:?}", run.ran());
    assert!(!p.dir.path().join("elsewhere").exists());
    assert!(
        !proj.join(".peft").exists(),
        "a refused run opened the cache"
    );

    let opted = text.replace(
        "export t.a to \"../elsewhere/a\" as peft",
        "export t.a to \"../elsewhere/a\" as peft { outside_project = true }",
    );
    std::fs::write(proj.join("pipeline.peft"), opted).unwrap();
    let check = p.peftc("check", "proj/pipeline.peft", &[], 60);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(!check.stderr.contains("W0950"), "{}", check.stderr);
    let run = p.peftc("run", "proj/pipeline.peft", &[], 300);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(p
        .dir
        .path()
        .join("elsewhere/a/adapter_model.safetensors")
        .is_file());
}

#[test]
fn a_deleted_or_damaged_export_is_rewritten_from_the_cache() {
    let p = Pipeline::new();
    let first = p.run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    let out = p.dir.path().join("out/a");
    let good = snapshot(&out);
    assert!(
        good.contains_key(Path::new("adapter_model.safetensors")),
        "{good:?}"
    );
    assert!(
        good.contains_key(Path::new("peftc.lineage.json")),
        "{good:?}"
    );

    // Cached and intact: nothing is said, nothing is written.
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.ran().is_empty(), "{:?}", again.ran());
    assert!(!again.stderr.contains("rewrote"), "{}", again.stderr);

    let (code, plan) = p.plan();
    assert_eq!(code, 0, "{plan}");
    assert!(!plan.contains("exports:"), "{plan}");

    std::fs::remove_dir_all(&out).unwrap();
    // `peftc plan` says the cached export stage's folder is gone and what a run does about it.
    let (code, plan) = p.plan();
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains(&format!(
            "{} is missing; `peftc run` writes it again from the cache",
            out.display()
        )),
        "{plan}"
    );
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.ran().is_empty(), "{:?}", again.ran());
    assert!(
        again.stderr.contains(&format!(
            "export.t.a: {} was missing; wrote it again from the cache",
            out.display()
        )),
        "{}",
        again.stderr
    );
    assert_eq!(snapshot(&out), good);

    std::fs::write(out.join("adapter_model.safetensors"), b"garbage").unwrap();
    let (_, plan) = p.plan();
    assert!(
        plan.contains("`adapter_model.safetensors` was changed; `peftc run` writes it again"),
        "{plan}"
    );
    let again = p.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("`adapter_model.safetensors` was changed; rewrote the export from the cache"),
        "{}",
        again.stderr
    );
    assert_eq!(snapshot(&out), good);

    std::fs::remove_file(out.join("REPORT.md")).unwrap();
    let again = p.run();
    assert!(
        again.stderr.contains("lost `REPORT.md`"),
        "{}",
        again.stderr
    );
    assert_eq!(snapshot(&out), good);
    // Nothing is left next to the export.
    let names: Vec<_> = std::fs::read_dir(p.dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("a")]);
}

#[test]
fn a_folder_peftc_did_not_write_is_refused_before_training() {
    let p = Pipeline::new();
    let out = p.dir.path().join("out/a");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let run = p.run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("holds no `peftc.lineage.json`"),
        "{}",
        run.stderr
    );
    assert!(run.ran().is_empty(), "trained anyway: {:?}", run.ran());
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");

    // An export that a person replaced by their own folder after it was written.
    std::fs::remove_dir_all(&out).unwrap();
    assert_eq!(p.run().code, 0);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let run = p.run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("was not written")
            || run.stderr.contains("holds no `peftc.lineage.json`"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");

    // An export of peftc with a file a person added: not replaced, the file is kept.
    std::fs::remove_dir_all(&out).unwrap();
    assert_eq!(p.run().code, 0);
    std::fs::write(out.join("adapter_model.safetensors"), b"garbage").unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let run = p.run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("holds `notes.txt`, which peftc did not write"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");

    // A plain file at the destination.
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::write(&out, b"a file").unwrap();
    let run = p.run();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("is not a folder"), "{}", run.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"a file");
}
