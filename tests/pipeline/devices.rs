//! `peftc run` asked for a CUDA device where there is none: the CPU build and, when CI built it
//! (`PEFTC_CUDA_BIN` names the binary), the CUDA build on a machine without a GPU both exit 2
//! with a message saying so; nothing runs, nothing panics.

use super::support::Pipeline;
use std::process::Command;

fn run_with(bin: &str, p: &Pipeline, extra: &[&str]) -> (i32, String) {
    let out = Command::new(bin)
        .arg("run")
        .arg(p.dir.path().join("pipeline.peft"))
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("PEFTC_CACHE_DIR")
        .env_remove("PEFTC_DEVICE")
        .output()
        .expect("run peftc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn declare_gpu(p: &Pipeline) {
    p.edit(|t| {
        format!("device g = cuda(0)\n{t}")
            .replace("  seed      = 1\n}", "  seed      = 1\n  on g\n}")
    });
}

#[test]
fn the_cpu_build_refuses_a_cuda_device_with_exit_2() {
    if cfg!(feature = "cuda") {
        eprintln!("skipped: this test binary is a CUDA build");
        return;
    }
    let p = Pipeline::new();
    let (code, stderr) = run_with(env!("CARGO_BIN_EXE_peftc"), &p, &["--device", "cuda:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("device cuda:0: this peftc was built without CUDA"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("[run]"), "a stage ran: {stderr}");
}

/// The CUDA binary CI built, unless this machine has a GPU (then the runs would train).
fn cuda_bin_without_gpu() -> Option<String> {
    let Ok(bin) = std::env::var("PEFTC_CUDA_BIN") else {
        eprintln!("skipped: PEFTC_CUDA_BIN is not set (CI sets it after the CUDA build)");
        return None;
    };
    let gpu = Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if gpu {
        eprintln!("skipped: this machine has a GPU");
        return None;
    }
    Some(bin)
}

#[test]
fn the_cuda_build_without_a_gpu_says_so_and_exits_2() {
    let Some(bin) = cuda_bin_without_gpu() else {
        return;
    };
    let p = Pipeline::new();
    let (code, stderr) = run_with(&bin, &p, &["--device", "cuda:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no usable CUDA GPU cuda:0 on this machine"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("[run]"), "a stage ran: {stderr}");
}

#[test]
fn the_cuda_build_without_a_gpu_refuses_a_train_declared_on_cuda() {
    let Some(bin) = cuda_bin_without_gpu() else {
        return;
    };
    let p = Pipeline::new();
    declare_gpu(&p);
    let (code, stderr) = run_with(&bin, &p, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no usable CUDA GPU cuda:0 on this machine"),
        "{stderr}"
    );
    assert!(!stderr.contains("[run]"), "a stage ran: {stderr}");
}
