//! `peftc check` and `peftc explain` through the real binary: output formats and exit codes.
use std::process::Command;

fn peftc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peftc"));
    c.env("NO_COLOR", "1")
        .env("HF_HOME", "/nonexistent-hf-home");
    c
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_exit_codes_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(
        tmp.path(),
        "good.peft",
        "model m = hf(\"gpt2\")\nadapter a = lora { r = 8, alpha = 16, targets = [c_attn] }\n",
    );
    let out = peftc().arg("check").arg(&good).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Warnings (unused) are allowed with exit 0 and are printed plainly under NO_COLOR.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("W0101") && !err.contains('\u{1b}'), "{err}");

    let bad = write(
        tmp.path(),
        "bad.peft",
        "adapter a = lora { lora_alpha = 16 }\nadapter b = lora { r = }\n",
    );
    let out = peftc()
        .args(["check", "--format", "json"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let codes: Vec<&str> = lines.iter().map(|v| v["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["E0104", "E0001"]);
    assert_eq!(lines[0]["start"]["line"], 1);
    assert_eq!(lines[0]["start"]["column"], 20);
    assert_eq!(lines[0]["start"]["byte"], 19);
    assert_eq!(lines[0]["end"]["byte"], 29);
    assert_eq!(lines[0]["severity"], "error");
    assert!(lines[0]["help"].as_str().unwrap().contains("alpha"));

    let out = peftc()
        .arg("check")
        .arg(tmp.path().join("missing.peft"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_figures_table() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "d.jsonl", "{\"t\":\"hello\"}\n");
    let f = write(
        tmp.path(),
        "p.peft",
        "model m = hf(\"meta-llama/Llama-2-7b-hf\")\ndataset d = jsonl(\"d.jsonl\") { text = field(\"t\") }\nadapter a = lora { r = 8, alpha = 16, targets = [q_proj, v_proj] }\ntrain t { model = m, adapters = [a], data = d }\n",
    );
    let out = peftc()
        .args(["check", "--figures"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    // DOMAIN.md's worked example: 32 layers x 2 x (4096x8 + 8x4096) = 4.19M trainable.
    assert!(table.contains("4.19M"), "{table}");
}

#[test]
fn explain_codes() {
    let out = peftc().args(["explain", "E0302"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("E0302 unknown target module") && text.contains("q_proj"),
        "{text}"
    );
    let out = peftc().args(["explain", "E9999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
