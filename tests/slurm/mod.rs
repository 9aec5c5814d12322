//! `peftc run --executor slurm` on a real Slurm cluster (a one-node cluster on this machine:
//! `scripts/slurm-local.sh`), on the tiny BERT pipeline: a sweep's three trains run as three jobs
//! at once and the select, eval, gate and export jobs after them; the results equal a local run
//! byte for byte; a second run submits nothing; a failed train cancels its dependants (exit 1); a
//! failed gate exits 3 and its export job never runs; Ctrl-C cancels the submitted jobs. Without
//! a cluster every test prints `skipped: ...`. `plan` checks the dry run's `sbatch` lines.

mod plan;
mod support;

use support::{cluster_up, files, job_fields, Project};

const SWEEP: &str = "
train swept {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 3
  batch     = 8
  lr        = sweep [1e-5, 1e-2, 1e-3]
}

eval swept_check {
  model   = swept
  data    = reviews.eval
  metrics = [loss, accuracy]
  gate loss < baseline.loss
}

export swept.a to \"out/swept\" as peft
";

#[test]
fn a_sweep_runs_as_parallel_jobs_equal_to_a_local_run_and_a_second_run_submits_nothing() {
    if !cluster_up() {
        return;
    }
    let p = Project::new(SWEEP);
    let run = p.run_slurm();
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Every stage was a job; the three trains did not wait for each other.
    let trains: Vec<String> = ["0.00001", "0.01", "0.001"]
        .iter()
        .map(|lr| {
            run.job_of(&format!("train swept[lr={lr}]"))
                .unwrap_or_else(|| panic!("train lr={lr} not submitted\n{}", run.stderr))
        })
        .collect();
    for stage in ["select swept", "export.swept.a"] {
        assert!(run.job_of(stage).is_some(), "{stage}\n{}", run.stderr);
    }
    let fields: Vec<_> = trains.iter().map(|j| job_fields(j)).collect();
    for f in &fields {
        assert_eq!(f["JobState"], "COMPLETED", "{f:?}");
        let dep = f.get("Dependency").map(String::as_str).unwrap_or("(null)");
        for other in &trains {
            assert!(
                !dep.contains(other.as_str()),
                "a train waits on another: {f:?}"
            );
        }
    }
    // Running at once: every train started before any of them ended.
    let last_start = fields.iter().map(|f| f["StartTime"].clone()).max().unwrap();
    let first_end = fields.iter().map(|f| f["EndTime"].clone()).min().unwrap();
    assert!(last_start <= first_end, "{fields:?}");
    // The select job waited for the three evals, the export for the select.
    let select = job_fields(&run.job_of("select swept").unwrap());
    let export = job_fields(&run.job_of("export.swept.a").unwrap());
    assert!(select["StartTime"] >= fields.iter().map(|f| f["EndTime"].clone()).max().unwrap());
    assert!(export["StartTime"] >= select["EndTime"], "{export:?}");
    // The same summary as a local run, and each job's log next to the cache entries.
    assert!(
        run.stderr.contains("swept: 3 points, ranked by"),
        "{}",
        run.stderr
    );
    let logs = std::fs::read_dir(p.path(".peft/logs/slurm"))
        .unwrap()
        .count();
    assert_eq!(logs, run.submitted().len());

    // A second run finds everything cached and submits nothing.
    let again = p.run_slurm();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.submitted().is_empty(), "{}", again.stderr);
    assert!(again.stderr.contains("stages: 0 ran"), "{}", again.stderr);

    // What the local executor gives in the same folder (stage outputs record the pipeline's
    // path): the same cache keys and the same adapters and exported files, byte for byte.
    // A train entry also records its timing (tokens/s, seconds, RSS), which differs between
    // any two runs, local ones too; so do the output digests of the trains and the keys of
    // the stages that read them, and the lineage file of the export, which names those
    // digests. Everything else is compared whole.
    let before = Snapshot::take(&p);
    for rel in [".peft", "out"] {
        std::fs::remove_dir_all(p.path(rel)).unwrap();
    }
    std::fs::remove_file(p.path("peftc.lock")).unwrap();
    let local = p.run_local();
    assert_eq!(local.code, 0, "{}", local.stderr);
    assert_eq!(local.ran().len(), 10, "{}", local.stderr);
    let after = Snapshot::take(&p);
    assert_eq!(before.keys, after.keys);
    assert_eq!(before.outputs, after.outputs);
    assert_eq!(before.adapters.len(), 3);
    assert!(before.adapters == after.adapters, "trained adapters differ");
    assert!(before.export.contains_key("adapter_model.safetensors"));
    assert_eq!(
        before.export.keys().collect::<Vec<_>>(),
        after.export.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &before.export {
        assert!(bytes == &after.export[name], "out/swept/{name} differs");
    }
}

/// What a run left, for comparing two runs.
struct Snapshot {
    /// Keys of the stages that read no train output: model, tokenize, the trains.
    keys: Vec<(String, String)>,
    /// Output digests of the stages that record no timing: model, tokenize, the evals.
    outputs: Vec<(String, String)>,
    /// Every trained adapter's files, per train stage.
    adapters: Vec<(String, std::collections::BTreeMap<String, Vec<u8>>)>,
    /// The exported folder without its lineage file.
    export: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Snapshot {
    fn take(p: &Project) -> Snapshot {
        let locked = p.locked();
        let reads_no_train = |id: &str| {
            !id.starts_with("eval") && !id.starts_with("select") && !id.starts_with("export")
        };
        let keys = locked
            .iter()
            .filter(|(id, ..)| reads_no_train(id))
            .map(|(id, key, _)| (id.clone(), key.clone()))
            .collect();
        let outputs = locked
            .iter()
            .filter(|(id, ..)| {
                !id.starts_with("train") && !id.starts_with("select") && !id.starts_with("export")
            })
            .map(|(id, _, out)| (id.clone(), out.clone()))
            .collect();
        let adapters = locked
            .iter()
            .filter(|(id, ..)| id.starts_with("train"))
            .map(|(id, key, _)| {
                (
                    id.clone(),
                    files(&p.path(&format!(".peft/entries/{key}/out/adapters"))),
                )
            })
            .collect();
        let mut export = files(&p.path("out/swept"));
        export.remove("peftc.lineage.json");
        Snapshot {
            keys,
            outputs,
            adapters,
            export,
        }
    }
}

const GATED: &str = "
train t {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 2
  batch     = 8
  lr        = 1e-3
}

eval check {
  model   = t
  data    = reviews.eval
  metrics = [loss]
  gate loss < 0.001
}

export t.a to \"out/a\" as peft
";

#[test]
fn a_failed_gate_exits_3_and_the_export_job_never_runs() {
    if !cluster_up() {
        return;
    }
    let p = Project::new(GATED);
    let run = p.run_slurm();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("gate failed: gate.check"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("metric"),
        "the gate table\n{}",
        run.stderr
    );
    let export = run.job_of("export.t.a").expect("export submitted");
    let f = job_fields(&export);
    assert_eq!(f["JobState"], "CANCELLED", "{f:?}");
    assert!(
        !run.ran().contains(&"export.t.a".to_string()),
        "{}",
        run.stderr
    );
    assert!(!p.path("out/a").exists());
}

#[test]
fn a_failed_train_cancels_its_dependants_and_exits_1() {
    if !cluster_up() {
        return;
    }
    // The checker reads only config.json; a truncated weights file fails the train stage.
    let p = Project::new(GATED);
    let weights = p.path("model/model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..1000]).unwrap();
    let run = p.run_slurm();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("error: stage train t failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("not a valid safetensors file"),
        "the job's error\n{}",
        run.stderr
    );
    for stage in ["eval.check", "gate.check", "export.t.a"] {
        let job = run
            .job_of(stage)
            .unwrap_or_else(|| panic!("{stage}\n{}", run.stderr));
        let f = job_fields(&job);
        assert_eq!(f["JobState"], "CANCELLED", "{stage}: {f:?}");
        assert_eq!(f["Reason"], "DependencyNeverSatisfied", "{stage}: {f:?}");
    }
    assert!(run.stderr.contains("skipped: eval.check"), "{}", run.stderr);
}

#[test]
fn ctrl_c_cancels_the_submitted_jobs() {
    if !cluster_up() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let p = Project::new(&GATED.replace("max_steps = 2", "epochs    = 1000"));
    let mut child = p
        .command("run", &["--executor", "slurm", "--cpus-per-task", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("[run]") && line.contains("train t") {
            // SAFETY: signals the child this test started.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        }
    }
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "{seen}");
    let out = support::Outcome {
        code: 130,
        stderr: seen.clone(),
    };
    assert!(seen.contains("cancelled jobs"), "{seen}");
    for stage in ["train t", "eval.check", "gate.check", "export.t.a"] {
        let job = out
            .job_of(stage)
            .unwrap_or_else(|| panic!("{stage}\n{seen}"));
        let state = job_fields(&job)["JobState"].clone();
        assert_eq!(state, "CANCELLED", "{stage} after Ctrl-C\n{seen}");
    }
    assert!(!p.path("out/a").exists());
}

#[test]
fn an_escalation_submits_the_next_value_after_the_gate_of_the_previous_failed() {
    if !cluster_up() {
        return;
    }
    let p = Project::new(
        "
train esc {
  model     = tiny
  adapters  = [a]
  data      = reviews.train
  max_steps = 4
  batch     = 8
  lr        = escalate [1e-9, 1e-2]
}

eval esc_check {
  model   = esc
  data    = reviews.eval
  metrics = [loss]
  gate loss < baseline.loss - 0.01
}

export esc.a to \"out/esc\" as peft
",
    );
    let run = p.run_slurm();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("escalating `esc`: a gate failed with lr = 0.000000001; trying lr = 0.01"),
        "{}",
        run.stderr
    );
    let jobs = |name: &str| -> Vec<String> {
        run.submitted()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, j)| j)
            .collect()
    };
    let (trains, gates) = (jobs("train esc"), jobs("gate.esc_check"));
    assert_eq!((trains.len(), gates.len()), (2, 2), "{}", run.stderr);
    // The first wave's export was cancelled by its failed gate; the second value's train was
    // submitted only after that gate's job had ended.
    let first_gate = job_fields(&gates[0]);
    assert_eq!(first_gate["JobState"], "FAILED", "{first_gate:?}");
    let second_train = job_fields(&trains[1]);
    assert!(
        second_train["SubmitTime"] >= first_gate["EndTime"],
        "{second_train:?} {first_gate:?}"
    );
    assert!(p.path("out/esc/adapter_model.safetensors").is_file());
}
