//! `peftc cache ls|gc|rm [--cache-dir DIR]`: list the stage cache, remove entries no lockfile
//! references (or older than an age), or remove entries by key prefix. Sizes are printed.
//! The logic lives in [`crate::exec::Cache`]; this file only parses and prints.

use crate::exec::{Cache, GcConfig, Lockfile};
use clap::{Args, Subcommand};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Inspect and clean the stage cache.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The cache folder.
    #[arg(long, global = true, default_value = ".peft")]
    pub cache_dir: PathBuf,
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List entries with kind, stage, size and age.
    Ls,
    /// Remove entries not referenced by the given lockfiles and/or older than an age.
    Gc {
        /// Keep every key this lockfile references (repeatable).
        #[arg(long = "lock", value_name = "FILE")]
        locks: Vec<PathBuf>,
        /// Only remove entries older than this (`30m`, `12h`, `7d`).
        #[arg(long, value_parser = parse_age)]
        older_than: Option<Duration>,
        /// Print what would be removed without removing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove entries by key (a unique prefix is enough), or all of them.
    Rm {
        keys: Vec<String>,
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
}

/// Parses `90s`, `30m`, `12h`, `7d` (a bare number is seconds).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not an age like 12h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}` (use s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// Runs `peftc cache ...`.
pub fn run(args: CacheArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: CacheArgs) -> Result<ExitCode, crate::exec::ExecError> {
    if !args.cache_dir.join("entries").is_dir() {
        println!("no cache at {}", args.cache_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let cache = Cache::open(&args.cache_dir)?;
    match args.command {
        CacheCommand::Ls => {
            let entries = cache.list()?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            for e in &entries {
                let age = e
                    .created_unix
                    .map_or("?".to_owned(), |c| human_age(now.saturating_sub(c)));
                println!(
                    "{:12}  {:12}  {:24}  {:>10}  {age}",
                    e.key.get(..12).unwrap_or(&e.key),
                    e.kind.as_deref().unwrap_or("(unreadable)"),
                    e.stage_name.as_deref().unwrap_or("-"),
                    human_bytes(e.bytes)
                );
            }
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            println!("{} entries, {}", entries.len(), human_bytes(total));
        }
        CacheCommand::Gc {
            locks,
            older_than,
            dry_run,
        } => {
            if locks.is_empty() && older_than.is_none() {
                eprintln!(
                    "error: give --lock FILE (keep what it references) and/or --older-than AGE"
                );
                return Ok(ExitCode::from(2));
            }
            let keep = if locks.is_empty() {
                None
            } else {
                let mut keep = BTreeSet::new();
                for path in &locks {
                    match Lockfile::read(path)? {
                        Some(lock) => keep.extend(lock.keys().cloned()),
                        None => {
                            eprintln!("error: no lockfile at {}", path.display());
                            return Ok(ExitCode::from(2));
                        }
                    }
                }
                Some(keep)
            };
            let removed = cache.gc(&GcConfig {
                keep,
                older_than,
                dry_run,
            })?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for e in &removed {
                println!(
                    "{verb} {}  {}  {}",
                    e.key.get(..12).unwrap_or(&e.key),
                    e.kind.as_deref().unwrap_or("?"),
                    human_bytes(e.bytes)
                );
            }
            let total: u64 = removed.iter().map(|e| e.bytes).sum();
            println!("{verb} {} entries, {}", removed.len(), human_bytes(total));
        }
        CacheCommand::Rm { keys, all } => {
            if keys.is_empty() && !all {
                eprintln!("error: give keys (or prefixes) to remove, or --all");
                return Ok(ExitCode::from(2));
            }
            let names: Vec<String> = cache.list()?.into_iter().map(|e| e.key).collect();
            let prefixes = if all { names.clone() } else { keys };
            if !all {
                for p in &prefixes {
                    let n = names.iter().filter(|k| k.starts_with(p.as_str())).count();
                    if n != 1 {
                        let what = if n == 0 {
                            "matches no entry"
                        } else {
                            "matches several entries"
                        };
                        eprintln!("error: `{p}` {what}; give a longer key prefix");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            let removed = cache.remove_matching(&prefixes)?;
            let total: u64 = removed.iter().map(|e| e.bytes).sum();
            println!("removed {} entries, {}", removed.len(), human_bytes(total));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `1.5 MB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(unit).unwrap_or(&"B"))
    }
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}
