//! Parser tests: every example parses cleanly; errors are reported with recovery.
use peftc::syntax::{self, ast};

fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn examples_parse_without_errors() {
    for name in ["sentiment", "instruct", "stack_and_mix", "escalate"] {
        let src = std::fs::read_to_string(examples_dir().join(format!("{name}.peft"))).unwrap();
        let (file, diags) = syntax::parse(&src);
        assert!(diags.is_empty(), "{name}: {diags:#?}");
        assert!(
            file.items.iter().all(|i| !matches!(i, ast::Item::Error(_))),
            "{name}"
        );
    }
}
