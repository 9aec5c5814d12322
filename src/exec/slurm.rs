//! [`SlurmExecutor`]: the [`BatchExecutor`] for Slurm. A stage becomes one `sbatch --parsable`
//! job running `peftc stage-run FILE --stage ID` on a node, with the stage's resources
//! (`--cpus-per-task`, `--mem`, `--gres=gpu:N`, `--time`), `--dependency=afterok:<ids>
//! --kill-on-invalid-dep=yes` for its parents, and its output in the cache's `logs/slurm/`.
//! Jobs are followed with `squeue` (falling back to `sacct` for jobs `squeue` has forgotten) and
//! cancelled with `scancel`. It must not decide what runs: the batch scheduler does.

use super::batch::{BatchExecutor, JobId, JobState, Submission};
use super::stage_run::sanitize;
use crate::plan::Stage;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What one stage's job asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobResources {
    /// `--cpus-per-task`.
    pub cpus: u32,
    /// `--mem` in MiB; `None`: the partition's default.
    pub mem_mib: Option<u64>,
    /// `--gres=gpu:N` when above 0.
    pub gpus: u32,
    /// `--time`, in Slurm's syntax; `None`: the partition's default.
    pub time: Option<String>,
    /// `--device` given to `peftc stage-run`.
    pub device: String,
}

/// How stages are submitted.
#[derive(Clone, Debug, Default)]
pub struct SlurmConfig {
    /// The `peftc` binary the nodes run (same path on every node).
    pub peftc: PathBuf,
    /// The pipeline file (absolute, on shared storage).
    pub pipeline: PathBuf,
    /// The cache folder (absolute, on shared storage).
    pub cache_dir: PathBuf,
    /// `--chdir` of the jobs.
    pub workdir: PathBuf,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Escalation choice the plan was lowered with: `(train, value index)`.
    pub escalation: Vec<(String, usize)>,
    /// Per stage id; stages missing here get [`SlurmConfig::default_resources`].
    pub resources: BTreeMap<String, JobResources>,
    pub default_resources: JobResources,
    /// More `sbatch` arguments, given as they are.
    pub extra: Vec<String>,
    /// `PEFTC_LOG` for the jobs' stage logs.
    pub log_filter: Option<String>,
    pub poll: Duration,
}

/// Submits stages to Slurm with `sbatch`.
#[derive(Clone, Debug)]
pub struct SlurmExecutor {
    pub config: SlurmConfig,
}

impl SlurmExecutor {
    pub fn new(config: SlurmConfig) -> Self {
        SlurmExecutor { config }
    }

    /// The folder that holds the jobs' output.
    pub fn log_dir(&self) -> PathBuf {
        self.config.cache_dir.join("logs").join("slurm")
    }

    /// The `sbatch` arguments (without `sbatch`) for `stage` after the jobs `after` (ids, or
    /// shell variables in a dry run).
    pub fn sbatch_args(&self, stage: &Stage, after: &[String], force: bool) -> Vec<String> {
        let c = &self.config;
        let res = c
            .resources
            .get(stage.id.as_str())
            .unwrap_or(&c.default_resources);
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name=peftc:{}", stage.id),
            format!("--chdir={}", c.workdir.display()),
            format!(
                "--output={}",
                self.log_dir()
                    .join(format!("{}-%j.log", sanitize(stage.id.as_str())))
                    .display()
            ),
        ];
        if let Some(p) = &c.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(a) = &c.account {
            args.push(format!("--account={a}"));
        }
        args.push(format!("--cpus-per-task={}", res.cpus.max(1)));
        if let Some(m) = res.mem_mib {
            args.push(format!("--mem={m}M"));
        }
        if res.gpus > 0 {
            args.push(format!("--gres=gpu:{}", res.gpus));
        }
        if let Some(t) = &res.time {
            args.push(format!("--time={t}"));
        }
        if !after.is_empty() {
            args.push(format!("--dependency=afterok:{}", after.join(":")));
            args.push("--kill-on-invalid-dep=yes".to_owned());
        }
        args.extend(c.extra.iter().cloned());
        args.push(format!("--wrap={}", self.job_command(stage, res, force)));
        args
    }

    /// The command a job runs.
    fn job_command(&self, stage: &Stage, res: &JobResources, force: bool) -> String {
        let c = &self.config;
        let mut words = vec![
            "exec".to_owned(),
            shell_quote(&c.peftc.display().to_string()),
        ];
        if let Some(filter) = &c.log_filter {
            words.push(format!("--log={}", shell_quote(filter)));
        }
        words.extend([
            "stage-run".to_owned(),
            shell_quote(&c.pipeline.display().to_string()),
            "--stage".to_owned(),
            shell_quote(stage.id.as_str()),
            "--cache-dir".to_owned(),
            shell_quote(&c.cache_dir.display().to_string()),
            "--device".to_owned(),
            shell_quote(&res.device),
        ]);
        for (train, idx) in &c.escalation {
            words.push("--escalation".to_owned());
            words.push(shell_quote(&format!("{train}={idx}")));
        }
        if force {
            words.push("--force".to_owned());
        }
        words.join(" ")
    }

    /// The dry run: one shell line per stage, `jN=$(sbatch ...)`, dependencies as `$jM`.
    pub fn dry_run_line(&self, var: &str, stage: &Stage, after: &[String]) -> String {
        let args: Vec<String> = self
            .sbatch_args(stage, after, false)
            .iter()
            .map(|a| {
                if a.starts_with("--dependency=") {
                    // Keep `$jN` expandable.
                    format!("\"{a}\"")
                } else {
                    shell_quote(a)
                }
            })
            .collect();
        format!("{var}=$(sbatch {})", args.join(" "))
    }
}

impl BatchExecutor for SlurmExecutor {
    fn submit(&self, sub: &Submission<'_>) -> anyhow::Result<JobId> {
        std::fs::create_dir_all(self.log_dir())?;
        let after: Vec<String> = sub.after.iter().map(|j| j.0.clone()).collect();
        let out = Command::new("sbatch")
            .args(self.sbatch_args(sub.stage, &after, sub.force))
            .output()
            .map_err(|e| anyhow::anyhow!("cannot start sbatch: {e}"))?;
        if !out.status.success() {
            anyhow::bail!(
                "sbatch failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        // `--parsable` prints `id` or `id;cluster`.
        let id = text.trim().split(';').next().unwrap_or("").trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            anyhow::bail!("sbatch printed no job id: {text:?}");
        }
        Ok(JobId(id.to_owned()))
    }

    fn states(&self, jobs: &[JobId]) -> anyhow::Result<HashMap<JobId, JobState>> {
        let list = jobs.iter().map(|j| j.0.as_str()).collect::<Vec<_>>();
        let mut states = HashMap::new();
        let out = Command::new("squeue")
            .args(["-h", "--states=all", "-o", "%i|%T|%r"])
            .arg(format!("--jobs={}", list.join(",")))
            .output()
            .map_err(|e| anyhow::anyhow!("cannot start squeue: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A single forgotten id makes squeue fail with "Invalid job id"; several are omitted.
        if !out.status.success() && !stderr.contains("Invalid job id") {
            anyhow::bail!("squeue failed: {}", stderr.trim());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut parts = line.split('|');
            let (Some(id), Some(state)) = (parts.next(), parts.next()) else {
                continue;
            };
            let reason = parts.next().unwrap_or("").to_owned();
            states.insert(JobId(id.trim().to_owned()), parse_state(state, reason));
        }
        let missing: Vec<&str> = list
            .iter()
            .copied()
            .filter(|id| !states.contains_key(&JobId((*id).to_owned())))
            .collect();
        if !missing.is_empty() {
            for (id, state) in sacct_states(&missing) {
                states.insert(id, state);
            }
        }
        Ok(states)
    }

    fn cancel(&self, jobs: &[JobId]) -> anyhow::Result<()> {
        let out = Command::new("scancel")
            .args(jobs.iter().map(|j| j.0.as_str()))
            .output()
            .map_err(|e| anyhow::anyhow!("cannot start scancel: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Jobs that ended meanwhile are not an error.
        if !out.status.success() && !stderr.contains("completed") {
            anyhow::bail!("scancel failed: {}", stderr.trim());
        }
        Ok(())
    }

    fn log_path(&self, stage: &Stage, job: &JobId) -> PathBuf {
        self.log_dir()
            .join(format!("{}-{job}.log", sanitize(stage.id.as_str())))
    }

    fn poll_interval(&self) -> Duration {
        self.config.poll
    }
}

/// States from `sacct` for jobs `squeue` no longer lists; nothing when accounting is off.
fn sacct_states(ids: &[&str]) -> Vec<(JobId, JobState)> {
    let Ok(out) = Command::new("sacct")
        .args(["-n", "-P", "-X", "-o", "JobID,State"])
        .arg(format!("--jobs={}", ids.join(",")))
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.split_once('|')?;
            Some((
                JobId(id.trim().to_owned()),
                parse_state(state, String::new()),
            ))
        })
        .collect()
}

/// A Slurm job state word (`squeue %T`, `sacct State`) as a [`JobState`].
pub fn parse_state(word: &str, reason: String) -> JobState {
    let word = word.trim();
    let head = word.split_whitespace().next().unwrap_or("");
    match head {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD" | "RESIZING"
        | "SUSPENDED" | "STOPPED" | "SIGNALING" | "SPECIAL_EXIT" | "RESV_DEL_HOLD" => {
            JobState::Pending
        }
        "RUNNING" | "COMPLETING" | "STAGE_OUT" => JobState::Running,
        "COMPLETED" => JobState::Completed,
        "CANCELLED" => JobState::Cancelled {
            reason: if reason.is_empty() {
                word.to_owned()
            } else {
                reason
            },
        },
        _ => JobState::Failed {
            reason: if reason.is_empty() || reason == "None" {
                word.to_owned()
            } else {
                format!("{word}: {reason}")
            },
        },
    }
}

/// `s` quoted for a POSIX shell (unchanged when it needs no quotes).
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '%' | '+')
        });
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Whether Slurm's client commands are on PATH.
pub fn slurm_available() -> bool {
    ["sbatch", "squeue", "scancel"]
        .iter()
        .all(|c| which(c).is_some())
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| Path::new(p).is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_slurm_words() {
        assert_eq!(
            parse_state("PENDING", "Dependency".into()),
            JobState::Pending
        );
        assert_eq!(parse_state("COMPLETING", "None".into()), JobState::Running);
        assert_eq!(parse_state("COMPLETED", "None".into()), JobState::Completed);
        assert_eq!(
            parse_state("CANCELLED by 0", String::new()),
            JobState::Cancelled {
                reason: "CANCELLED by 0".into()
            }
        );
        assert_eq!(
            parse_state("OUT_OF_MEMORY", "OutOfMemory".into()),
            JobState::Failed {
                reason: "OUT_OF_MEMORY: OutOfMemory".into()
            }
        );
    }

    #[test]
    fn shell_quoting_survives_spaces_and_quotes() {
        assert_eq!(shell_quote("a/b-c.peft"), "a/b-c.peft");
        assert_eq!(shell_quote("train t[lr=0.1]"), "'train t[lr=0.1]'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
