//! `peftc check FILE [--format json] [--figures]`: checks a pipeline and prints diagnostics.
//! Exit 0 clean (warnings allowed), 1 errors, 2 the file could not be read.

use crate::check::{self, figures, render, RealWorld};
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Check a pipeline file against its models and data, without running anything.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The `.peft` file.
    pub file: PathBuf,
    /// `human` (default) or `json` (one object per diagnostic per line).
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Print parameters, adapter size, memory and FLOPs of every train stage.
    #[arg(long)]
    pub figures: bool,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let world = RealWorld::from_env();
    let checked = match check::check(&world, &args.file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let fancy = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    match args.format {
        Format::Json => {
            for d in &checked.diagnostics {
                println!("{}", render::json(d, &checked.sources));
            }
        }
        Format::Human => eprint!(
            "{}",
            render::human_all(
                &checked.diagnostics,
                &checked.sources,
                render::Style { fancy, width: 100 }
            )
        ),
    }
    if args.figures {
        print!("{}", figures_table(&checked.program));
    }
    if args.format == Format::Human {
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = checked.diagnostics.len() - errors;
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            args.file.display()
        );
    }
    if checked.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The `--figures` table.
pub fn figures_table(p: &check::Program) -> String {
    let mut out =
        String::from("train            trainable        %      adapter    memory     FLOPs/step\n");
    for t in &p.trains {
        match &t.figures {
            Some(f) => out.push_str(&format!(
                "{:<16} {:>10} {:>8.3}% {:>10} {:>10} {:>12.3e}\n",
                t.meta.name,
                figures::human_count(f.trainable_params),
                f.trainable_percent,
                figures::human_bytes(f.adapter_bytes),
                figures::human_bytes(f.memory.total),
                f.flops_per_step
            )),
            None => out.push_str(&format!("{:<16} (model shape unknown)\n", t.meta.name)),
        }
    }
    if !p.quants.is_empty() {
        out.push_str("\nquant            format   bytes/param  compute\n");
        for q in &p.quants {
            out.push_str(&format!(
                "{:<16} {:<8} {:>11.4}  {}\n",
                q.meta.name,
                q.kind.name(),
                q.kind.bytes_per_param(q.block_size, q.double_quant),
                q.compute.map_or("model dtype", |c| c.name())
            ));
        }
    }
    out
}
