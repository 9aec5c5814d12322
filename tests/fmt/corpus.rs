//! Every `examples/*.peft`, `stdlib/*.peft` and `tests/ui/**/*.peft` that parses: formatting
//! twice gives the same text, comments survive, and the formatted file checks to the same
//! diagnostics (codes and messages) and the same program (locations aside) as the original.
use peftc::check::{check_source, MemoryWorld, RealWorld, World};
use peftc::fmt::{format_source, FormatError};
use std::path::{Path, PathBuf};

const TINY_LLAMA: &str = r#"{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":256}"#;

fn peft_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            peft_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "peft") {
            out.push(p);
        }
    }
}

/// The program's debug form without source locations (they move when the layout changes).
fn without_locs(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("Loc { ") {
        out.push_str(&rest[..i]);
        let mut depth = 0;
        let mut end = rest.len();
        for (j, c) in rest[i..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str("Loc");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn ui_world() -> MemoryWorld {
    let mut w = MemoryWorld::new();
    w.add("/ui/data/qa.jsonl", "{\"q\":\"hi\",\"a\":\"hello\"}\n");
    w.add(
        "/ui/data/reviews.jsonl",
        "{\"text\":\"good\",\"label\":\"pos\"}\n",
    );
    w.add("/ui/models/llama/config.json", TINY_LLAMA);
    w.add(
        "/ui/models/t5/config.json",
        r#"{"model_type":"t5","d_model":512}"#,
    );
    w.add("/ui/models/fake.gguf", "NOTAGGUF");
    w
}

fn same_meaning(world: &dyn World, path: &Path, before: &str, after: &str) {
    let a = check_source(world, path, before);
    let b = check_source(world, path, after);
    let msgs = |c: &peftc::check::Checked| {
        c.diagnostics
            .iter()
            .map(|d| format!("{} {}", d.code.as_str(), d.message))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        msgs(&a),
        msgs(&b),
        "{}: diagnostics changed",
        path.display()
    );
    assert_eq!(
        without_locs(&format!("{:?}", a.program)),
        without_locs(&format!("{:?}", b.program)),
        "{}: program changed",
        path.display()
    );
}

#[test]
fn formatting_is_idempotent_and_keeps_meaning() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in ["examples", "stdlib", "tests/ui"] {
        peft_files(&repo.join(d), &mut files);
    }
    files.sort();
    let mut ui = ui_world();
    for f in &files {
        if let Ok(rel) = f.strip_prefix(repo.join("tests/ui")) {
            ui.add(
                Path::new("/ui").join(rel),
                std::fs::read_to_string(f).unwrap(),
            );
        }
    }
    if let Ok(inc) = std::fs::read_to_string(repo.join("tests/ui/ui_cycle_b.peft.inc")) {
        ui.add("/ui/ui_cycle_b.peft", inc);
    }
    let real = RealWorld::from_env();
    let (mut formatted, mut refused) = (0, 0);
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let once = match format_source(&src) {
            Ok(t) => t,
            Err(FormatError::Syntax { .. }) => {
                assert!(
                    !peftc::syntax::parse(&src).1.is_empty(),
                    "{}: refused but parses",
                    f.display()
                );
                refused += 1;
                continue;
            }
            Err(e) => panic!("{}: {e}", f.display()),
        };
        let twice = format_source(&once).unwrap();
        assert_eq!(once, twice, "{}: formatting is not idempotent", f.display());
        assert_eq!(
            peftc::syntax::parse(&src).0.comments.len(),
            peftc::syntax::parse(&once).0.comments.len()
        );
        match f.strip_prefix(repo.join("tests/ui")) {
            Ok(rel) => same_meaning(&ui, &Path::new("/ui").join(rel), &src, &once),
            Err(_) => same_meaning(&real, f, &src, &once),
        }
        formatted += 1;
    }
    assert!(formatted >= 80, "only {formatted} files formatted");
    assert!(refused >= 10, "only {refused} syntax-error cases refused");
}
