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

#[test]
fn operators_have_precedence_and_spans() {
    let src = "eval e {\n  gate accuracy >= baseline.accuracy + 0.05 * 2\n}\n";
    let (file, diags) = syntax::parse(src);
    assert!(diags.is_empty(), "{diags:?}");
    let ast::Item::Decl(d) = &file.items[0] else {
        panic!("not a decl")
    };
    let ast::Entry::Gate(g) = &d.body.as_ref().unwrap().entries[0] else {
        panic!("not a gate")
    };
    let ast::ExprKind::Binary { op, lhs, rhs } = &g.expr.kind else {
        panic!("not binary")
    };
    assert_eq!(*op, ast::BinOp::Ge);
    assert_eq!(lhs.span.text(src), "accuracy");
    let ast::ExprKind::Binary {
        op: add, rhs: mul, ..
    } = &rhs.kind
    else {
        panic!("not add")
    };
    assert_eq!(*add, ast::BinOp::Add);
    assert!(matches!(
        mul.kind,
        ast::ExprKind::Binary {
            op: ast::BinOp::Mul,
            ..
        }
    ));
    assert_eq!(rhs.span.text(src), "baseline.accuracy + 0.05 * 2");
}

#[test]
fn comments_and_doc_comments_are_kept() {
    let src = "// header\n/// The base model.\n/// Second line.\nmodel m = hf(\"gpt2\") {\n  /// Field doc.\n  dtype = f32 // trailing\n}\n";
    let (file, diags) = syntax::parse(src);
    assert!(diags.is_empty());
    assert_eq!(file.comments.len(), 5);
    assert_eq!(file.comments.iter().filter(|c| c.doc).count(), 3);
    let ast::Item::Decl(d) = &file.items[0] else {
        panic!("not a decl")
    };
    assert_eq!(d.doc.as_deref(), Some("The base model.\nSecond line."));
    let ast::Entry::Field(f) = &d.body.as_ref().unwrap().entries[0] else {
        panic!("not a field")
    };
    assert_eq!(f.doc.as_deref(), Some("Field doc."));
}

#[test]
fn one_run_reports_errors_in_several_declarations() {
    let src = "adapter a = lora {\n  r 8\n  alpha = 16\n}\nadapter b = lora {\n  r =\n  alpha = 2\n}\nadapter c = lora { r = 4 }\n";
    let (file, diags) = syntax::parse(src);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    assert_eq!(
        diags[0].message,
        "expected `=` or `:`, found the number `8`"
    );
    assert_eq!(diags[1].message, "expected a value after `=`");
    // Every declaration survives: the broken lines are dropped, the rest is kept.
    let names: Vec<&str> = file
        .items
        .iter()
        .filter_map(|i| {
            if let ast::Item::Decl(d) = i {
                Some(d.name.name.as_str())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}
