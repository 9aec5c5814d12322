//! `peftc plan --executor slurm`: the `sbatch` lines a run would submit (a dry run; no cluster
//! needed), with the resources taken from the pipeline and the flags, and nothing for cached
//! stages.

use super::support::Project;

/// The dry run with this machine's paths replaced by placeholders.
fn dry_run(p: &Project, extra: &[&str]) -> String {
    let mut args = vec!["--executor", "slurm"];
    args.extend_from_slice(extra);
    let out = p
        .command("plan", &args)
        .env_remove("PEFTC_SLURM_PARTITION")
        .env_remove("PEFTC_SLURM_ACCOUNT")
        .env_remove("PEFTC_SLURM_TIME")
        .env_remove("PEFTC_SLURM_MEM")
        .env_remove("PEFTC_SLURM_CPUS")
        .env_remove("PEFTC_SLURM_GPUS")
        .env_remove("PEFTC_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = p.dir.path().canonicalize().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .replace(env!("CARGO_BIN_EXE_peftc"), "[PEFTC]")
        .replace(&dir.display().to_string(), "[DIR]")
        .replace(&p.dir.path().display().to_string(), "[DIR]")
}

const TRAIN: &str = "
train t {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 2
  batch     = 8
  lr        = sweep [1e-3, 1e-2]
}

eval check {
  model   = t
  data    = reviews.eval
  metrics = [loss]
  gate loss < baseline.loss
}

export t.a to \"out/a\" as peft
";

#[test]
fn the_dry_run_prints_the_sbatch_lines_with_dependencies_and_resources() {
    let p = Project::new(TRAIN);
    let text = dry_run(
        &p,
        &[
            "--partition",
            "gpu",
            "--account",
            "ml",
            "--time",
            "1:00:00",
            "--sbatch-arg=--qos=high",
        ],
    );
    insta::assert_snapshot!(text);
}

#[test]
fn the_dry_run_submits_nothing_for_cached_stages() {
    let p = Project::new(TRAIN);
    let run = p.run_local();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = dry_run(&p, &[]);
    assert!(
        text.starts_with("# peftc run --executor slurm would submit 0 job(s);"),
        "{text}"
    );
    assert!(!text.contains("sbatch"), "{text}");
}

#[test]
fn a_train_on_a_cuda_device_asks_for_a_gpu_and_the_flags_override_the_estimate() {
    let p = Project::new(
        "
device gpu = cuda(0) { memory = 24GiB }

train t {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 2
  batch     = 8
  lr        = 1e-3
  device    = gpu
}
",
    );
    if !cfg!(feature = "cuda") {
        // The jobs run this same binary: a CPU-only build refuses a CUDA train before planning.
        let out = p
            .command("plan", &["--executor", "slurm"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("E1206"), "{stderr}");
        return;
    }
    let text = dry_run(&p, &[]);
    let train = text
        .lines()
        .find(|l| l.contains("--job-name=peftc:train.t "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(train.contains(" --gres=gpu:1 "), "{train}");
    assert!(train.contains(" --mem="), "estimate + 1 GiB: {train}");
    assert!(train.contains("--device cuda:0"), "{train}");
    let tokenize = text
        .lines()
        .find(|l| l.contains("--job-name=peftc:tokenize.reviews "))
        .unwrap();
    assert!(!tokenize.contains("--gres"), "{tokenize}");
    assert!(tokenize.contains("--device cpu"), "{tokenize}");

    let text = dry_run(&p, &["--mem", "32G", "--gpus", "2", "--cpus-per-task", "8"]);
    let train = text
        .lines()
        .find(|l| l.contains("--job-name=peftc:train.t "))
        .unwrap();
    assert!(train.contains(" --mem=32768M "), "{train}");
    assert!(train.contains(" --gres=gpu:2 "), "{train}");
    assert!(train.contains(" --cpus-per-task=8 "), "{train}");
}
