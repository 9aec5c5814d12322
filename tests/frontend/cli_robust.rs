//! The real binary on inputs that once crashed or hung it: every regression case through
//! `check`, `fmt`, `run` and `watch` (an error exit with bounded output, never a panic, abort or
//! hang), and files that are not regular files (a FIFO, `/dev/zero`) where a `.peft` file is
//! read.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn peftc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_peftc"));
    c.env("NO_COLOR", "1")
        .env("HF_HOME", "/nonexistent-hf-home")
        .env(
            "PEFTC_CACHE_DIR",
            std::env::temp_dir().join("peftc-robust-cache"),
        );
    c
}

/// Runs `cmd` to its end, failing the test after `limit` (a hang) instead of waiting forever.
fn run_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let read = |mut p: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = p.read_to_end(&mut v);
            v
        })
    };
    let (o, e) = (read(Box::new(out_pipe)), read(Box::new(err_pipe)));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

fn cases() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = super::regressions::generated()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frontend/fuzz_corpus");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        v.push((
            p.file_stem().unwrap().to_string_lossy().into_owned(),
            std::fs::read_to_string(&p).unwrap(),
        ));
    }
    v
}

#[test]
fn check_fmt_and_run_exit_1_with_bounded_output_on_every_regression_case() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in cases() {
        let f = tmp.path().join(format!("{name}.peft"));
        std::fs::write(&f, &text).unwrap();
        for args in [&["check"][..], &["fmt", "--check"], &["run"], &["plan"]] {
            let mut cmd = peftc();
            cmd.args(args).arg(&f).current_dir(tmp.path());
            let out = run_within(cmd, Duration::from_secs(120));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{name} {args:?}: {}",
                err.chars().take(2000).collect::<String>()
            );
            assert!(!err.contains("panicked"), "{name} {args:?}: {err}");
            // Output does not grow with diagnostics x file size.
            assert!(
                out.stderr.len() < 400_000,
                "{name} {args:?}: {} bytes",
                out.stderr.len()
            );
        }
        // The unchanged file: `fmt` wrote nothing.
        assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
    }
}

#[test]
fn watch_reports_the_non_ascii_syntax_error_and_keeps_watching() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("p.peft");
    std::fs::write(&f, "model m = hf(\"gpt2\") // 模型\n}\n").unwrap();
    let mut child = peftc()
        .args(["watch", "--no-run"])
        .arg(&f)
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains("check: 1 errors") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
            }
            Err(_) => break,
        }
    }
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("E0001") && seen.contains("check: 1 errors"),
        "{seen}"
    );
    assert!(still_running, "watch stopped: {seen}");
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.peft");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
    let user = tmp.path().join("user.peft");
    std::fs::write(
        &user,
        "use \"pipe.peft\"\nuse \"/dev/zero\"\nmodel m = gguf(\"pipe.peft\")\n",
    )
    .unwrap();
    let mut cmd = peftc();
    cmd.arg("check").arg(&user).current_dir(tmp.path());
    let out = run_within(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("E0109").count(), 2, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    // The FIFO itself as the checked file, and as a file to format.
    for args in [&["check"][..], &["fmt"]] {
        let mut cmd = peftc();
        cmd.args(args).arg(&fifo);
        let out = run_within(cmd, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a regular file"), "{args:?}: {err}");
    }
}
