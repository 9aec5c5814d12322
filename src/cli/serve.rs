//! `peftc serve [FILE] [--model M] [--adapter NAME=PATH ..]`: serves a base model and its
//! LoRA adapters over an OpenAI-compatible HTTP API (see `crate::serve`). With FILE, the base
//! and the adapters are the pipeline's PEFT exports; `--model` and `--adapter` name them
//! directly (and `--adapter` adds to a pipeline's). Runs until SIGTERM or Ctrl-C, finishing
//! in-flight requests. Exit 0 after a clean stop, 1 errors in the pipeline, 2 usage or I/O.

use super::pipeline::{checked_program, Purpose, Unusable};
use crate::serve::{
    pipeline::from_program, start, AdapterSpec, BaseSource, BaseSpec, Limits, ServeConfig,
};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

/// Serve a base model and many adapters, switched per request (OpenAI-compatible HTTP).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A `.peft` pipeline: serves its base model and the adapters it exports as `peft`.
    pub file: Option<PathBuf>,
    /// The base model: a Hugging Face folder or a `.gguf` file (instead of FILE's).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The name clients use for the base model (default: the pipeline's model name, or the
    /// folder or file name).
    #[arg(long)]
    pub name: Option<String>,
    /// An adapter as NAME=PATH (a PEFT folder); repeat for more.
    #[arg(long = "adapter", value_name = "NAME=PATH")]
    pub adapters: Vec<String>,
    /// Quantize a folder's base at load: nf4, int8, q8_0 or q4k.
    #[arg(long)]
    pub quantize: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Requests decoded together in one forward pass.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// Requests waiting for a slot before new ones get 429.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// The largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    /// Megabytes of adapter weights kept in memory (least recently used dropped first).
    #[arg(long, default_value_t = 1024)]
    pub adapter_cache_mb: usize,
    /// Device: `cpu` (default), `cuda:N` or `metal` (needs a build with that feature).
    #[arg(long, env = "PEFTC_DEVICE", default_value = "cpu")]
    pub device: String,
}

pub fn run(args: &ServeArgs) -> ExitCode {
    match config(args) {
        Ok(Some(cfg)) => serve(cfg),
        Ok(None) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse_adapter(s: &str) -> Result<AdapterSpec, String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok(AdapterSpec {
            name: name.to_string(),
            path: PathBuf::from(path),
        }),
        _ => Err(format!(
            "`--adapter {s}`: expected NAME=PATH, e.g. `--adapter support=out/support`"
        )),
    }
}

/// The server's configuration; `None` when the pipeline has errors (already printed).
fn config(args: &ServeArgs) -> Result<Option<ServeConfig>, String> {
    // The runtime reads the device from the environment, like `peftc run`.
    std::env::set_var("PEFTC_DEVICE", &args.device);
    let mut adapters = Vec::new();
    let mut base = None;
    if let Some(file) = &args.file {
        let program = match checked_program(file, Purpose::Inspect) {
            Ok(p) => p,
            Err(Unusable::Errors) => return Ok(None),
            Err(Unusable::Io(e)) => return Err(e),
        };
        let (b, a) = from_program(&program).map_err(|e| e.to_string())?;
        base = Some(b);
        adapters = a;
    }
    if let Some(model) = &args.model {
        let source = BaseSource::from_path(model.clone());
        let name = source
            .path()
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "base".into());
        base = Some(BaseSpec {
            source,
            name,
            quant: None,
        });
    }
    let Some(mut base) = base else {
        return Err("nothing to serve: give a pipeline FILE or `--model M`".into());
    };
    if let Some(q) = &args.quantize {
        let format = crate::runtime::quant::QuantFormat::parse(q)
            .ok_or_else(|| format!("`--quantize {q}`: expected nf4, int8, q8_0 or q4k"))?;
        if matches!(base.source, BaseSource::Gguf(_)) {
            return Err(
                "`--quantize` applies to a folder; a GGUF file is already quantized".into(),
            );
        }
        base.quant = Some(crate::runtime::quant::QuantSpec::new(format));
    }
    if let Some(n) = &args.name {
        base.name = n.clone();
    }
    for a in &args.adapters {
        adapters.push(parse_adapter(a)?);
    }
    let limits = Limits {
        max_batch: args.max_batch.max(1),
        max_queue: args.max_queue,
        max_tokens: args.max_tokens.max(1),
        default_max_tokens: 16.min(args.max_tokens.max(1)),
        adapter_cache_bytes: args.adapter_cache_mb.saturating_mul(1 << 20),
    };
    Ok(Some(ServeConfig {
        base,
        adapters,
        addr: SocketAddr::new(args.host, args.port),
        limits,
    }))
}

fn serve(cfg: ServeConfig) -> ExitCode {
    let names: Vec<String> = std::iter::once(cfg.base.name.clone())
        .chain(cfg.adapters.iter().map(|a| a.name.clone()))
        .collect();
    match start(cfg, true) {
        Ok(handle) => {
            eprintln!(
                "peftc serve: listening on http://{} (models: {})",
                handle.addr,
                names.join(", ")
            );
            match handle.wait() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
