//! Thousands of mutated examples (deleted, duplicated and swapped tokens, random bytes,
//! truncation): the checker never panics, always returns, and every span lies inside its file.
use super::support::ui_world;
use peftc::check;
use rand::{Rng, SeedableRng};
use std::path::Path;

fn tokens(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in src.char_indices() {
        if c.is_whitespace() || "{}[]()=,.:\"".contains(c) {
            if start < i {
                out.push(&src[start..i]);
            }
            out.push(&src[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < src.len() {
        out.push(&src[start..]);
    }
    out
}

#[test]
fn mutated_examples_never_panic_and_spans_stay_inside() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let world = ui_world();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut runs = 0;
    for name in ["sentiment", "instruct", "stack_and_mix", "escalate"] {
        let src = std::fs::read_to_string(dir.join(format!("{name}.peft"))).unwrap();
        let toks = tokens(&src);
        for _ in 0..500 {
            let mut t: Vec<String> = toks.iter().map(|s| s.to_string()).collect();
            let n = t.len();
            let text = match rng.gen_range(0..5) {
                0 => {
                    t.remove(rng.gen_range(0..n));
                    t.concat()
                }
                1 => {
                    let i = rng.gen_range(0..n);
                    let dup = t[i].clone();
                    t.insert(i, dup);
                    t.concat()
                }
                2 => {
                    t.swap(rng.gen_range(0..n), rng.gen_range(0..n));
                    t.concat()
                }
                3 => {
                    let mut b = src.clone().into_bytes();
                    for _ in 0..rng.gen_range(1..4) {
                        let i = rng.gen_range(0..b.len());
                        b[i] = rng.gen();
                    }
                    String::from_utf8_lossy(&b).into_owned()
                }
                _ => {
                    let mut cut = rng.gen_range(0..src.len());
                    while !src.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    src[..cut].to_string()
                }
            };
            let checked = check::check_source(&world, Path::new("/ui/fuzz.peft"), &text);
            for d in &checked.diagnostics {
                let f = checked
                    .sources
                    .get(d.loc.file)
                    .expect("diagnostic file exists");
                assert!(
                    d.loc.span.start <= d.loc.span.end && d.loc.span.end as usize <= f.text.len(),
                    "span outside file: {d:?}\n{text}"
                );
            }
            runs += 1;
        }
    }
    assert_eq!(runs, 2000);
}
