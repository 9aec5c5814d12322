//! `peftc fmt` on files: rewrites in place, `--check` lists and exits 1, syntax errors leave
//! the file untouched and exit 1.
use std::process::Command;

fn peftc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fmt_rewrites_check_lists_and_errors_leave_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let messy = dir.path().join("messy.peft");
    let clean = dir.path().join("clean.peft");
    let broken = dir.path().join("broken.peft");
    std::fs::write(&messy, "adapter a=lora{r=8}").unwrap();
    std::fs::write(&clean, "adapter a = lora {\n  r = 8\n}\n").unwrap();
    std::fs::write(&broken, "adapter a = lora { r = }\n").unwrap();
    let (m, c, b) = (
        messy.to_str().unwrap(),
        clean.to_str().unwrap(),
        broken.to_str().unwrap(),
    );

    let (code, stdout, _) = peftc(&["fmt", "--check", m, c]);
    assert_eq!(code, 1);
    assert_eq!(stdout.trim(), m);
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "adapter a=lora{r=8}"
    );

    let (code, _, _) = peftc(&["fmt", m, c]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "adapter a = lora {\n  r = 8\n}\n"
    );
    // A folder: every `.peft` in it; only the broken file is reported.
    let (code, stdout, stderr) = peftc(&["fmt", "--check", dir.path().to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains(b), "{stderr}");

    let (code, _, stderr) = peftc(&["fmt", b]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("not formatted") && stderr.contains("E0001"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "adapter a = lora { r = }\n"
    );
}
