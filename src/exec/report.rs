//! The human run report next to an export: `REPORT.md` with a metrics table (value, baseline,
//! threshold, verdict) and a loss curve drawn with plotters into `loss.svg` from a JSONL log of
//! `{"step": n, "loss": x}` lines. It only formats what it is given.

use super::atomic::write_atomic;
use super::error::{ExecError, Result};
use plotters::prelude::*;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One point of the loss curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPoint {
    pub step: u64,
    pub loss: f64,
}

/// One row of the metrics table.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    pub name: String,
    pub value: f64,
    /// The base model's value, when measured.
    pub baseline: Option<f64>,
    /// The gate, as written (`>= 0.80`), when there is one.
    pub gate: Option<String>,
    /// The gate's verdict, when there is one.
    pub passed: Option<bool>,
}

/// What goes into `REPORT.md`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportInput {
    pub title: String,
    /// Lines shown under the title (base model, data, peftc version...).
    pub facts: Vec<(String, String)>,
    pub metrics: Vec<MetricRow>,
    pub loss: Vec<LossPoint>,
}

/// Reads a JSONL loss log: one `{"step": n, "loss": x}` object per line; blank lines and lines
/// without a `loss` (e.g. eval records) are skipped.
pub fn read_loss_jsonl(path: &Path) -> Result<Vec<LossPoint>> {
    let text = std::fs::read_to_string(path).map_err(ExecError::io("read", path))?;
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| ExecError::BadJsonl {
            path: path.to_path_buf(),
            line: n + 1,
            message,
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let Some(loss) = v.get("loss") else { continue };
        let loss = loss
            .as_f64()
            .ok_or_else(|| bad("`loss` is not a number".to_owned()))?;
        let step = v
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad("`step` is not an unsigned integer".to_owned()))?;
        points.push(LossPoint { step, loss });
    }
    Ok(points)
}

/// The loss curve as an SVG document (800x400).
pub fn loss_svg(points: &[LossPoint]) -> std::result::Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let x_max = points.iter().map(|p| p.step).max().unwrap_or(1).max(1);
        let x_min = points
            .iter()
            .map(|p| p.step)
            .min()
            .unwrap_or(0)
            .min(x_max - 1);
        let finite = points.iter().map(|p| p.loss).filter(|l| l.is_finite());
        let y_max = finite.clone().fold(f64::NEG_INFINITY, f64::max);
        let y_min = finite.fold(f64::INFINITY, f64::min);
        let (y_min, y_max) = if y_min.is_finite() && y_max > y_min {
            let pad = (y_max - y_min) * 0.05;
            (y_min - pad, y_max + pad)
        } else if y_min.is_finite() {
            (y_min - 0.5, y_min + 0.5)
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption("training loss", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .draw()
            .map_err(|e| e.to_string())?;
        let series = points
            .iter()
            .filter(|p| p.loss.is_finite())
            .map(|p| (p.step, p.loss));
        chart
            .draw_series(LineSeries::new(series, &BLUE))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The Markdown text of the report (the plot is referenced as `loss.svg` when there is a curve).
pub fn report_markdown(input: &ReportInput) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", input.title);
    for (k, v) in &input.facts {
        let _ = writeln!(md, "- **{k}**: {v}");
    }
    if !input.facts.is_empty() {
        md.push('\n');
    }
    if !input.metrics.is_empty() {
        md.push_str("## Metrics\n\n| metric | value | baseline | gate | verdict |\n| --- | ---: | ---: | --- | --- |\n");
        for m in &input.metrics {
            let baseline = m.baseline.map_or("-".to_owned(), fmt_num);
            let gate = m.gate.clone().unwrap_or_else(|| "-".to_owned());
            let verdict = match m.passed {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {baseline} | {gate} | {verdict} |",
                m.name,
                fmt_num(m.value)
            );
        }
        md.push('\n');
    }
    if !input.loss.is_empty() {
        let first = input.loss.first().map(|p| p.loss).unwrap_or_default();
        let last = input.loss.last().map(|p| p.loss).unwrap_or_default();
        let _ = writeln!(
            md,
            "## Training loss\n\n![training loss](loss.svg)\n\n{} points, loss {} at the first step, {} at the last.",
            input.loss.len(),
            fmt_num(first),
            fmt_num(last)
        );
    }
    md
}

/// Writes `REPORT.md` (and `loss.svg` when there is a curve) into `dir`; returns REPORT.md's path.
pub fn write_report(dir: &Path, input: &ReportInput) -> Result<PathBuf> {
    if !input.loss.is_empty() {
        let svg_path = dir.join("loss.svg");
        let svg = loss_svg(&input.loss).map_err(|message| ExecError::Plot {
            path: svg_path.clone(),
            message,
        })?;
        write_atomic(&svg_path, svg.as_bytes())?;
    }
    let path = dir.join("REPORT.md");
    write_atomic(&path, report_markdown(input).as_bytes())?;
    Ok(path)
}

fn fmt_num(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}
