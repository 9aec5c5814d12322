//! Where exports may write, decided from paths alone (no disk access): an export destination
//! must not be empty, the project folder (the folder of the checked `.peft` file) or one of its
//! ancestors, one of the pipeline's own inputs (model folders and files, data files, the `.peft`
//! files it loads, the `.peft/` cache) or a folder inside or around one, nor overlap another
//! export. A destination outside the project folder is a warning here and an error for
//! `peftc run` (see [`refuse_outside_project`]) unless the export says `outside_project = true`.
//!
//! `peftc run` also refuses, on disk, a destination that holds anything peftc did not write
//! (`stages::publish`); these checks catch the mistakes a user can see in the file itself.

use super::cx::Cx;
use super::hir::{Export, ModelSource, Program};
use super::sources::Sources;
use crate::syntax::{Code, Diagnostic, Loc, Severity};
use std::path::{Path, PathBuf};

/// One thing the pipeline reads: its path, what it is, and where it is declared.
struct Input {
    path: PathBuf,
    what: String,
    loc: Option<Loc>,
}

impl Cx<'_> {
    /// Checks every export's destination against the project folder, the inputs and the other
    /// exports.
    pub fn check_exports(&mut self, prog: &Program, sources: &Sources) {
        let Some(root) = prog.file.parent().map(Path::to_path_buf) else {
            return;
        };
        let inputs = inputs(prog, sources, &root);
        for (i, x) in prog.exports.iter().enumerate() {
            if x.dest.trim().is_empty() {
                self.emit(
                    Diagnostic::new(
                        Code::ExportEmptyPath,
                        x.dest_loc.file,
                        x.dest_loc.span,
                        "an export needs a destination folder",
                    )
                    .with_label("empty path")
                    .with_help("name a folder of its own, e.g. `export t.a to \"out/a\"`"),
                );
                continue;
            }
            if root.starts_with(&x.path) {
                let what = if x.path == root {
                    "the project folder (the folder of this .peft file)"
                } else {
                    "a folder that contains the project"
                };
                self.emit(
                    Diagnostic::new(
                        Code::ExportOverProject,
                        x.dest_loc.file,
                        x.dest_loc.span,
                        format!("this export would replace {what}"),
                    )
                    .with_label(format!("`{}` is {}", x.dest, x.path.display()))
                    .with_help(
                        "export into a folder of its own inside the project, e.g. `\"out/a\"`",
                    ),
                );
                continue;
            }
            if let Some(input) = inputs
                .iter()
                .find(|p| x.path.starts_with(&p.path) || p.path.starts_with(&x.path))
            {
                let how = if x.path == input.path {
                    "is"
                } else if x.path.starts_with(&input.path) {
                    "is inside"
                } else {
                    "contains"
                };
                let mut d = Diagnostic::new(
                    Code::ExportOverInput,
                    x.dest_loc.file,
                    x.dest_loc.span,
                    format!("this export's destination {how} {}", input.what),
                )
                .with_label(format!("{how} {}", input.path.display()))
                .with_help("export into a folder of its own that holds no input, e.g. `\"out/a\"`");
                if let Some(loc) = input.loc {
                    d = d.with_related(loc, "declared here");
                }
                self.emit(d);
                continue;
            }
            if let Some(other) = prog.exports[..i]
                .iter()
                .find(|o| o.path.starts_with(&x.path) || x.path.starts_with(&o.path))
            {
                self.emit(
                    Diagnostic::new(
                        Code::ExportOverlap,
                        x.dest_loc.file,
                        x.dest_loc.span,
                        "two exports write the same folder",
                    )
                    .with_label(if other.path == x.path {
                        "the same folder as another export".to_string()
                    } else {
                        format!("overlaps {}", other.path.display())
                    })
                    .with_related(other.dest_loc, "the other export")
                    .with_help("give each export a folder of its own"),
                );
                continue;
            }
            if !x.outside_project && !x.path.starts_with(&root) {
                self.emit(outside(x, &root));
            }
        }
    }
}

fn outside(x: &Export, root: &Path) -> Diagnostic {
    Diagnostic::new(
        Code::ExportOutsideProject,
        x.dest_loc.file,
        x.dest_loc.span,
        "this export writes outside the project folder",
    )
    .with_label(format!("{} is not inside {}", x.path.display(), root.display()))
    .with_help(
        "`peftc run` refuses it: export inside the project, or add `outside_project = true` to the export's block if this folder is meant",
    )
}

/// Turns the outside-the-project warnings into errors: `peftc run` writes nothing outside the
/// project folder that the pipeline did not ask for explicitly.
pub fn refuse_outside_project(diagnostics: &mut [Diagnostic]) {
    for d in diagnostics
        .iter_mut()
        .filter(|d| d.code == Code::ExportOutsideProject)
    {
        d.severity = Severity::Error;
    }
}

/// Every path the pipeline reads, normalised.
fn inputs(prog: &Program, sources: &Sources, root: &Path) -> Vec<Input> {
    let mut out = vec![Input {
        path: root.join(".peft"),
        what: "the stage cache (.peft/)".into(),
        loc: None,
    }];
    for m in &prog.models {
        let name = &m.meta.name;
        let mut paths: Vec<(PathBuf, String)> = Vec::new();
        match &m.source {
            ModelSource::Local { path } => {
                paths.push((path.clone(), format!("the folder of model `{name}`")));
            }
            ModelSource::Gguf { path } => {
                paths.push((path.clone(), format!("the GGUF file of model `{name}`")));
            }
            ModelSource::Hf { .. } => {}
        }
        if let Some(r) = &m.resolved {
            paths.push((r.clone(), format!("the files of model `{name}`")));
            // A Hugging Face cache snapshot lives in `models--org--name/snapshots/REV`.
            if let Some(repo) = r.ancestors().find(|a| {
                a.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("models--"))
            }) {
                paths.push((
                    repo.to_path_buf(),
                    format!("the Hugging Face cache folder of model `{name}`"),
                ));
            }
        }
        for (path, what) in paths {
            out.push(Input {
                path: super::load::normalize(&path),
                what,
                loc: Some(m.meta.loc),
            });
        }
    }
    for d in &prog.datasets {
        let plain = d
            .source
            .patterns
            .iter()
            .filter(|p| !p.to_string_lossy().contains(['*', '?', '[']));
        for path in d.source.files.iter().chain(plain) {
            out.push(Input {
                path: super::load::normalize(path),
                what: format!("a data file of dataset `{}`", d.meta.name),
                loc: Some(d.meta.loc),
            });
        }
    }
    for f in sources.files.iter().filter(|f| f.path.is_absolute()) {
        out.push(Input {
            path: super::load::normalize(&f.path),
            what: "a .peft file of this pipeline".into(),
            loc: None,
        });
    }
    out
}
