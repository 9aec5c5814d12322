//! Every input that once crashed the front end, as regression cases: the files in
//! `tests/frontend/fuzz_corpus/` (small ones, kept as written) and the large ones built here
//! (deep nesting, long chains, very long lines, thousands of diagnostics). Each goes through
//! the parser, checker, renderer, formatter and the in-process language server with every
//! invariant of the fuzz harness; `cli.rs` and `tests/lsp/robust.rs` run them through the real
//! binary.
use super::fuzz::{check_case, Server};
use super::support::ui_world;
use rand::SeedableRng;
use std::path::Path;

/// The large crashing inputs, by name: deep nesting, long chains, long lines.
pub fn generated() -> Vec<(&'static str, String)> {
    vec![
        (
            "brackets_3000",
            format!("let x = {}1{}\n", "[".repeat(3000), "]".repeat(3000)),
        ),
        (
            "parens_3000",
            format!(
                "adapter a = lora {{ r = {}8{} }}\n",
                "(".repeat(3000),
                ")".repeat(3000)
            ),
        ),
        (
            "records_3000",
            format!(
                "adapter a = lora {{ r = {}1{} }}\n",
                "{ a = ".repeat(3000),
                " }".repeat(3000)
            ),
        ),
        (
            "unclosed_brackets_5000",
            format!("let x = {}\n", "[".repeat(5000)),
        ),
        (
            "unary_minus_50000",
            format!("adapter a = lora {{ r = {}1 }}\n", "-".repeat(50_000)),
        ),
        (
            "sum_chain_50000",
            format!("adapter a = lora {{ r = 1{} }}\n", " + 1".repeat(50_000)),
        ),
        (
            "error_at_column_70000",
            format!(
                "adapter a = lora {{ r = 8, {}y = }}\n",
                "x = 1, ".repeat(10_000)
            ),
        ),
        (
            "many_diagnostics_on_a_100kb_line",
            format!("adapter a = lora {{ {}}}\n", "zz = 1, ".repeat(12_500)),
        ),
        (
            "many_lines_of_errors",
            "adapter a = lora { r = ] }\n".repeat(2_000),
        ),
    ]
}

fn corpus() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frontend/fuzz_corpus");
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "peft"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_input_that_once_crashed_the_front_end_is_handled() {
    let world = ui_world();
    let mut server = Server::start();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let files = corpus();
    assert!(files.len() >= 6, "{} corpus files", files.len());
    let cases: Vec<(String, String)> = files
        .into_iter()
        .chain(generated().into_iter().map(|(n, t)| (n.to_string(), t)))
        .collect();
    for (name, text) in &cases {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_case(&world, text);
            server.exercise(&mut rng, text);
        }));
        assert!(r.is_ok(), "regression case `{name}` failed");
    }
    server.stop();
}

#[test]
fn deep_nesting_is_refused_at_its_span_with_e0005() {
    let world = ui_world();
    for (name, text) in generated().into_iter().take(5) {
        let checked = peftc::check::check_source(&world, Path::new("/ui/deep.peft"), &text);
        let d = checked
            .diagnostics
            .iter()
            .find(|d| d.code.as_str() == "E0005" || d.code.as_str() == "E0001")
            .unwrap_or_else(|| panic!("{name}: no syntax diagnostic"));
        if name != "unclosed_brackets_5000" {
            assert_eq!(d.code.as_str(), "E0005", "{name}: {d:?}");
            assert!(d.message.contains("more than 100 levels"), "{name}");
        }
        // The span is one char where the too-deep value starts.
        assert!(d.loc.span.len() <= 4, "{name}: {:?}", d.loc.span);
    }
    // 100 levels are fine.
    let ok = format!("let x = {}1{}\n", "[".repeat(90), "]".repeat(90));
    let checked = peftc::check::check_source(&world, Path::new("/ui/ok.peft"), &ok);
    assert!(
        checked
            .diagnostics
            .iter()
            .all(|d| !d.code.as_str().starts_with("E000")),
        "{:?}",
        checked.diagnostics
    );
}

#[test]
fn a_syntax_error_after_a_non_ascii_line_points_at_the_right_char() {
    let src = "model m = hf(\"gpt2\") // 模型\n}\n";
    let (_, diags) = peftc::syntax::parse(src);
    let d = diags.first().expect("a syntax error");
    assert_eq!(d.code.as_str(), "E0001");
    // The error is reported where the declaration ended, before the comment.
    assert_eq!(d.loc.span.start as usize, src.find(" //").unwrap());
}

#[test]
fn human_output_is_capped_and_small_whatever_the_line_length() {
    let world = ui_world();
    let (_, text) = generated()
        .into_iter()
        .find(|(n, _)| *n == "many_diagnostics_on_a_100kb_line")
        .unwrap();
    let checked = peftc::check::check_source(&world, Path::new("/ui/long.peft"), &text);
    assert!(
        checked.diagnostics.len() > 10_000,
        "{}",
        checked.diagnostics.len()
    );
    let out = peftc::check::render::human_all(
        &checked.diagnostics,
        &checked.sources,
        peftc::check::render::Style::plain(),
    );
    // Each report starts with its code on a line of its own: 100 reports in all.
    let reports = out
        .lines()
        .filter(|l| {
            l.len() == 5
                && (l.starts_with('E') || l.starts_with('W'))
                && l[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .count();
    assert_eq!(reports, peftc::check::render::MAX_SHOWN, "{out}");
    assert!(out.contains(&format!(
        "... and {} more",
        checked.diagnostics.len() - peftc::check::render::MAX_SHOWN
    )));
    assert!(out.len() < 200_000, "{} bytes", out.len());
    // The label's column is the real one, past column 65,000.
    let last = checked.diagnostics.get(99).unwrap();
    let col = last.loc.span.start + 1;
    assert!(
        out.contains(&format!("long.peft:1:{col}]")),
        "no column {col}"
    );
}
