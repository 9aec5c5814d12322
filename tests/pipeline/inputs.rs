//! Hostile runtime inputs through the real binary: a model file that is a FIFO or a link to
//! `/dev/zero` is a clear error naming the file, not a hang (each run has a deadline); a JSONL
//! row that is not UTF-8 names its line and is skipped under `skip_invalid`; a BOM is accepted.

use super::support::Pipeline;

/// The deadline of one run in these tests; the tiny pipeline takes seconds.
const SECS: u64 = 300;

#[test]
fn a_fifo_tokenizer_json_is_an_error_not_a_hang() {
    let p = Pipeline::new();
    let tok = p.dir.path().join("model/tokenizer.json");
    std::fs::remove_file(&tok).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&tok)
        .status()
        .unwrap();
    assert!(made.success());
    // `peftc check` (which `run` starts with) already refuses it.
    let run = p.peftc("run", "pipeline.peft", &[], SECS);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("model/tokenizer.json is a FIFO (named pipe), not a regular file"),
        "{}",
        run.stderr
    );
}

#[test]
fn model_safetensors_linked_to_dev_zero_is_an_error_not_a_hang() {
    let p = Pipeline::new();
    let weights = p.dir.path().join("model/model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &weights).unwrap();
    let run = p.peftc("run", "pipeline.peft", &[], SECS);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("model/model.safetensors is a character device, not a regular file"),
        "{}",
        run.stderr
    );
    // `plan` checks the same files: it must not hang either.
    let plan = p.peftc("plan", "pipeline.peft", &[], SECS);
    assert_ne!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stderr.contains("character device"), "{}", plan.stderr);
}

#[test]
fn a_jsonl_row_that_is_not_utf8_names_its_line_and_is_skipped_with_skip_invalid() {
    let p = Pipeline::new();
    let data = p.dir.path().join("data.jsonl");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes.extend_from_slice(b"{\"text\": \"caf\xE9 was good\", \"label\": \"positive\"}\n");
    std::fs::write(&data, bytes).unwrap();
    let run = p.peftc("run", "pipeline.peft", &[], SECS);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "data.jsonl:41 is not a valid JSONL record: invalid UTF-8 (byte 0xE9 at column 14)"
        ),
        "{}",
        run.stderr
    );
    p.edit(|s| s.replace("max_len = 16", "max_len = 16\n  skip_invalid = true"));
    let run = p.peftc("run", "pipeline.peft", &[], SECS);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(p
        .dir
        .path()
        .join("out/a/adapter_model.safetensors")
        .is_file());
}

#[test]
fn a_utf8_bom_at_the_start_of_the_data_is_accepted() {
    let p = Pipeline::new();
    let data = p.dir.path().join("data.jsonl");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, [b"\xEF\xBB\xBF".as_slice(), &bytes].concat()).unwrap();
    let run = p.peftc("run", "pipeline.peft", &[], SECS);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
