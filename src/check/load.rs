//! Loads the main file and everything it `use`s (stdlib modules embedded in the binary, and
//! files relative to the importing file), detecting import cycles. Reads only through [`World`].

use super::sources::Sources;
use super::world::World;
use crate::syntax::{self, ast, Code, Diagnostic, FileId, ParseCache};
use std::path::{Path, PathBuf};

/// The stdlib modules, written in `.peft` and embedded.
pub const STDLIB: &[(&str, &str)] = &[
    ("std.recipes", include_str!("../../stdlib/recipes.peft")),
    ("std.templates", include_str!("../../stdlib/templates.peft")),
    ("std.models", include_str!("../../stdlib/models.peft")),
];

/// One parsed file. `modules[i]` has `FileId(i)`.
#[derive(Debug, Clone)]
pub struct Module {
    pub ast: ast::File,
    /// `Some("std.recipes")` for stdlib modules.
    pub std_name: Option<String>,
    /// The folder relative paths in this file are taken from.
    pub dir: PathBuf,
}

/// A `use` resolved to a module.
#[derive(Debug, Clone)]
pub struct Import {
    pub from: usize,
    pub target: usize,
    pub names: Option<Vec<ast::Ident>>,
}

/// Everything loaded.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: Sources,
    pub modules: Vec<Module>,
    pub imports: Vec<Import>,
}

struct Loader<'w> {
    world: &'w dyn World,
    cache: Option<&'w ParseCache>,
    out: Loaded,
    diags: Vec<Diagnostic>,
    stack: Vec<PathBuf>,
}

/// Loads `path` (whose text is `text`) and its imports, parsing through `cache` when given.
pub fn load<'w>(
    world: &'w dyn World,
    path: &Path,
    text: String,
    cache: Option<&'w ParseCache>,
) -> (Loaded, Vec<Diagnostic>) {
    let mut l = Loader {
        world,
        cache,
        out: Loaded::default(),
        diags: Vec::new(),
        stack: Vec::new(),
    };
    l.add_file(path.to_path_buf(), text, None);
    (l.out, l.diags)
}

/// Index of the stdlib module `name` once loaded (loading it when needed).
pub fn ensure_std(
    loaded: &mut Loaded,
    diags: &mut Vec<Diagnostic>,
    name: &str,
    cache: Option<&ParseCache>,
) -> Option<usize> {
    if let Some(i) = loaded
        .modules
        .iter()
        .position(|m| m.std_name.as_deref() == Some(name))
    {
        return Some(i);
    }
    let (_, text) = STDLIB.iter().find(|(n, _)| *n == name)?;
    let id = loaded.sources.add(
        PathBuf::from(format!("<std>/{}.peft", name.trim_start_matches("std."))),
        text.to_string(),
    );
    let (ast, d) = syntax::parse_file_cached(text, id, cache);
    diags.extend(d);
    loaded.modules.push(Module {
        ast,
        std_name: Some(name.to_string()),
        dir: PathBuf::from("<std>"),
    });
    Some(loaded.modules.len() - 1)
}

impl Loader<'_> {
    fn add_file(&mut self, path: PathBuf, text: String, _from: Option<usize>) -> usize {
        let id = self.out.sources.add(path.clone(), text.clone());
        let (ast, d) = syntax::parse_file_cached(&text, id, self.cache);
        self.diags.extend(d);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let uses: Vec<ast::Use> = ast
            .items
            .iter()
            .filter_map(|i| {
                if let ast::Item::Use(u) = i {
                    Some(u.clone())
                } else {
                    None
                }
            })
            .collect();
        self.out.modules.push(Module {
            ast,
            std_name: None,
            dir: dir.clone(),
        });
        let me = self.out.modules.len() - 1;
        self.stack.push(path);
        for u in uses {
            self.resolve_use(me, id, &dir, &u);
        }
        self.stack.pop();
        me
    }

    fn resolve_use(&mut self, me: usize, id: FileId, dir: &Path, u: &ast::Use) {
        match &u.target {
            ast::UseTarget::Module(segs) => {
                let name: Vec<&str> = segs.iter().map(|s| s.name.as_str()).collect();
                let name = name.join(".");
                match ensure_std(&mut self.out, &mut self.diags, &name, self.cache) {
                    Some(target) => self.out.imports.push(Import {
                        from: me,
                        target,
                        names: u.names.clone(),
                    }),
                    None => {
                        let known: Vec<&str> = STDLIB.iter().map(|(n, _)| *n).collect();
                        let span = segs
                            .first()
                            .map(|f| f.span.to(segs.last().map(|l| l.span).unwrap_or(f.span)))
                            .unwrap_or(u.span);
                        let mut d = Diagnostic::new(
                            Code::UnknownModule,
                            id,
                            span,
                            format!("no module `{name}`"),
                        )
                        .with_label("not a stdlib module");
                        d = d.with_help(match super::suggest::did_you_mean(&name, known.iter().copied()) {
                            Some(s) => s,
                            None => format!("the stdlib modules are {}; other files are imported with `use \"path.peft\"`", known.join(", ")),
                        });
                        self.diags.push(d);
                    }
                }
            }
            ast::UseTarget::File(s) => {
                let path = normalize(&dir.join(&s.value));
                if let Some(pos) = self.stack.iter().position(|p| *p == path) {
                    let chain: Vec<String> = self.stack[pos..]
                        .iter()
                        .chain([&path])
                        .map(|p| file_name(p))
                        .collect();
                    self.diags.push(
                        Diagnostic::new(
                            Code::ImportCycle,
                            id,
                            s.span,
                            format!("import cycle: {}", chain.join(" -> ")),
                        )
                        .with_label("this import leads back here")
                        .with_help(
                            "move the shared declarations into a third file that both import",
                        ),
                    );
                    return;
                }
                if let Some(existing) = self.find_loaded(&path) {
                    self.out.imports.push(Import {
                        from: me,
                        target: existing,
                        names: u.names.clone(),
                    });
                    return;
                }
                match self.world.read_to_string(&path) {
                    Ok(text) => {
                        let target = self.add_file(path, text, Some(me));
                        self.out.imports.push(Import { from: me, target, names: u.names.clone() });
                    }
                    Err(e) => self.diags.push(
                        Diagnostic::new(Code::UnreadableImport, id, s.span, format!("cannot read `{}`: {e}", path.display()))
                            .with_label("imported here")
                            .with_help("paths in `use \"...\"` are relative to the file that contains the `use`"),
                    ),
                }
            }
        }
    }

    fn find_loaded(&self, path: &Path) -> Option<usize> {
        self.out.sources.files.iter().position(|f| f.path == path)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes `.` and `..` components without touching the disk.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
