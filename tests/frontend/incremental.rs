//! Incremental re-parsing: a document edited step by step (random token edits that pile up, and
//! returns to the original) and checked through one `ParseCache` gives exactly what a fresh check
//! gives, tree, program and diagnostics; and an edit inside one declaration re-parses only it.
use super::support::ui_world;
use peftc::check;
use peftc::syntax::{self, FileId, ParseCache};
use rand::{Rng, SeedableRng};
use std::path::Path;

fn edit(rng: &mut impl Rng, text: &str) -> String {
    let cut = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let at = cut(rng.gen_range(0..=text.len()));
    let mut out = text.to_string();
    match rng.gen_range(0..4) {
        0 => {
            let end = cut((at + rng.gen_range(1..12)).min(text.len()));
            out.replace_range(at..end.max(at), "");
        }
        1 => {
            let piece = [
                "x", " ", "\n", "{", "}", "=", "8", "\"", "// c\n", "r = 4\n",
            ][rng.gen_range(0..10)];
            out.insert_str(at, piece);
        }
        2 => {
            // A whole line duplicated: an item may appear twice.
            let start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let end = text[at..]
                .find('\n')
                .map(|i| at + i + 1)
                .unwrap_or(text.len());
            out.insert_str(start, &text[start..end]);
        }
        _ => {
            let c = ["a", "1", " ", "_"][rng.gen_range(0..4)];
            let end = cut((at + 1).min(text.len()));
            out.replace_range(at..end.max(at), c);
        }
    }
    out
}

#[test]
fn an_edited_document_checks_as_a_fresh_one_through_the_cache() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let world = ui_world();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let path = Path::new("/ui/edited.peft");
    let mut steps = 0;
    for name in ["sentiment", "instruct", "stack_and_mix", "escalate"] {
        let original = std::fs::read_to_string(dir.join(format!("{name}.peft"))).unwrap();
        let cache = ParseCache::new();
        let mut text = original.clone();
        for step in 0..150 {
            text = if step % 25 == 24 {
                original.clone()
            } else {
                edit(&mut rng, &text)
            };
            let cached = check::check_source_cached(&world, path, &text, Some(&cache));
            let fresh = check::check_source(&world, path, &text);
            assert_eq!(
                cached.syntax, fresh.syntax,
                "{name} step {step}: trees differ\n{text}"
            );
            assert_eq!(
                cached.diagnostics, fresh.diagnostics,
                "{name} step {step}: diagnostics differ\n{text}"
            );
            assert_eq!(
                cached.program, fresh.program,
                "{name} step {step}: programs differ"
            );
            let (direct, _) = syntax::parse_file(&text, FileId(0));
            assert_eq!(cached.syntax[0], direct);
            steps += 1;
        }
        let (hits, _) = cache.stats();
        assert!(hits > 0, "{name}: the cache was never used");
    }
    assert_eq!(steps, 600);
}

#[test]
fn an_edit_inside_one_declaration_reparses_only_that_declaration() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stack_and_mix.peft"),
    )
    .unwrap();
    let cache = ParseCache::new();
    let (first, _) = syntax::parse_file_cached(&src, FileId(0), Some(&cache));
    cache.end_round();
    let items = first.items.len();
    assert!(items >= 8, "{items} items");
    // Chunks without an item (comments alone) are parsed every time; there is one here.
    let (_, chunks) = cache.stats();
    assert_eq!(chunks, items + 1);

    // Change a number inside the third declaration and insert lines above everything.
    let third = first.items[2].span();
    let body = &src[third.range()];
    let digit = body.find(|c: char| c.is_ascii_digit()).expect("a number");
    let mut edited = src.clone();
    edited.insert(third.start as usize + digit, '1');
    edited.insert_str(0, "// a new comment\n\n");
    let (second, diags) = syntax::parse_file_cached(&edited, FileId(0), Some(&cache));
    assert!(diags.is_empty(), "{diags:?}");
    let (hits, misses) = cache.stats();
    assert_eq!(hits, items - 1, "every other item comes from the cache");
    assert_eq!(
        misses - chunks,
        2,
        "the edited item and the comment chunk are parsed"
    );
    assert_eq!(second, syntax::parse_file(&edited, FileId(0)).0);
}
