//! `tests/ui/*.peft`: every case's rendered diagnostics against a snapshot in
//! `tests/ui/snapshots`, and every code covered by a case and explained.
use super::support::{render_check, ui_world};
use peftc::check::explain::explain;
use peftc::syntax::Code;
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn ui_cases_match_snapshots_and_cover_every_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut world = ui_world();
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(stem) = name.strip_suffix(".peft.inc") {
            world.add(format!("/ui/{stem}.peft"), text);
        } else if let Some(stem) = name.strip_suffix(".peft") {
            world.add(format!("/ui/{stem}.peft"), text.clone());
            cases.push((stem.to_string(), text));
        }
    }
    cases.sort();
    assert!(cases.len() >= 60, "only {} ui cases", cases.len());
    let mut seen = BTreeSet::new();
    for (name, src) in &cases {
        let (checked, out) = render_check(&world, name, src);
        for d in &checked.diagnostics {
            seen.insert(d.code);
            // Every span lies inside its file.
            let f = checked.sources.get(d.loc.file).unwrap();
            assert!(
                d.loc.span.end as usize <= f.text.len(),
                "{name}: span outside file"
            );
        }
        let snap = format!("----- SOURCE\n{src}\n----- DIAGNOSTICS\n{out}");
        insta::with_settings!({ snapshot_path => dir.join("snapshots"), prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name.as_str(), snap);
        });
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !seen.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "codes without a ui case: {missing:?}");
    for c in Code::ALL {
        let text = explain(*c);
        assert!(
            text.contains(c.as_str()) && text.contains("Example:") && text.contains("Fix:"),
            "{}",
            c.as_str()
        );
    }
}

#[test]
fn codes_are_unique_and_parse_back() {
    let mut set = BTreeSet::new();
    for c in Code::ALL {
        assert!(set.insert(c.as_str()), "duplicate code {}", c.as_str());
        assert_eq!(Code::parse(&c.as_str().to_lowercase()), Some(*c));
    }
}
