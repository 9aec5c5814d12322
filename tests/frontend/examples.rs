//! The examples check cleanly once their data and model files exist: a temp copy gets small
//! stand-in data files; the real GGUF is used from `$PEFTC_TEST_ASSETS` when present.
use peftc::check::{self, RealWorld};
use std::path::{Path, PathBuf};

fn assets() -> PathBuf {
    std::env::var_os("PEFTC_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/assets"))
}

#[test]
fn examples_check_with_stand_in_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::create_dir_all(tmp.path().join("models")).unwrap();
    // Enough rows for every split part and a few optimizer steps (the checker reads them).
    let reviews: String = (0..200)
        .map(|i| {
            let label = ["negative", "positive"][i % 2];
            format!("{{\"text\":\"review {i}\",\"label\":\"{label}\"}}\n")
        })
        .collect();
    std::fs::write(tmp.path().join("data/rotten_tomatoes.jsonl"), reviews).unwrap();
    let qa: String = (0..200)
        .map(|i| format!("{{\"question\":\"q {i}\",\"answer\":\"a {i}\"}}\n"))
        .collect();
    std::fs::write(tmp.path().join("data/chatterbot_qa.jsonl"), qa).unwrap();
    let gguf = assets().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let have_gguf = gguf.is_file();
    if have_gguf {
        std::fs::copy(
            &gguf,
            tmp.path().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        )
        .unwrap();
    } else {
        println!(
            "skipped: the GGUF parts of instruct/escalate/stack_and_mix ({} absent)",
            gguf.display()
        );
    }
    let world = RealWorld::with_hf_home(tmp.path().join("no-hf-cache"));
    for name in ["sentiment", "instruct", "stack_and_mix", "escalate"] {
        let file = tmp.path().join(format!("{name}.peft"));
        std::fs::copy(src.join(format!("{name}.peft")), &file).unwrap();
        let c = check::check(&world, &file).unwrap();
        let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.is_error()).collect();
        if have_gguf || !["instruct", "escalate", "stack_and_mix"].contains(&name) {
            assert!(errors.is_empty(), "{name}: {errors:#?}");
        } else {
            assert!(
                errors.iter().all(|d| d.code == check::Code::ModelNotFound),
                "{name}: {errors:#?}"
            );
        }
        assert!(
            c.diagnostics
                .iter()
                .all(|d| d.is_error() || d.code != check::Code::UnusedDecl),
            "{name}"
        );
    }
    if have_gguf {
        // The real SmolLM2-135M-Instruct header: llama, 30 layers, hidden 576, 9 heads, 3 KV heads.
        let c = check::check(&world, &tmp.path().join("instruct.peft")).unwrap();
        let m = &c.program.models[0];
        let s = m.shape.as_ref().unwrap();
        assert_eq!(
            (
                s.hidden,
                s.intermediate,
                s.layers,
                s.heads,
                s.kv_heads,
                s.vocab
            ),
            (576, 1536, 30, 9, 3, 49152)
        );
        assert!(m.has_chat_template && s.tied_embeddings);
        assert!(
            (134_000_000..135_000_000).contains(&s.params),
            "{}",
            s.params
        );
        // all_linear: 30 layers x 7 modules.
        let hir_lora = match &c.program.trains[0].adapters[0].kind {
            check::hir::AdapterKind::Lora(l) => l,
            _ => panic!("not lora"),
        };
        assert_eq!(hir_lora.targets.modules.len(), 210);
    }
    // Figures of the sentiment example (all linear layers, r = 8): per layer 4 x 8 x (384 + 384)
    // for query, key, value, attention output, 2 x 8 x (384 + 1536) for the feed-forward; 6
    // layers; the pooler's dense layer 8 x (384 + 384) (PEFT's all-linear includes it); plus the
    // head 384 x 2 + 2. 338,690: what training the example trains.
    let c = check::check(&world, &tmp.path().join("sentiment.peft")).unwrap();
    assert_eq!(
        c.program.trains[0]
            .figures
            .as_ref()
            .unwrap()
            .trainable_params,
        6 * (4 * 8 * (384 + 384) + 2 * 8 * (384 + 1536)) + 8 * (384 + 384) + 770
    );
}
