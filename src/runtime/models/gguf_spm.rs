//! The `tokenizer.json` equivalent of a SentencePiece vocabulary stored in a GGUF file
//! (`tokenizer.ggml.model = llama`, as llama.cpp writes Llama-2 and Mistral tokenizers), built
//! the way transformers 5.x builds it from the same file (`integrations/gguf/
//! gguf_tokenizer_mapping.py`, `LlamaTokenizer`): a BPE model with byte fallback whose merges
//! come from the file or, when it has none, from the vocabulary and its scores
//! ([`merges_from_scores`], as `generate_merges`); a `Metaspace` pre-tokenizer (`▁`, prepended
//! to the first section; transformers 5.25 does this even when `tokenizer.ggml.add_space_prefix`
//! is false, and so does this builder, to give the same ids); the decoder `Replace ▁ → space,
//! ByteFallback, Fuse, Strip one leading space`; BOS/EOS added by a template as `add_bos_token`
//! (default true) and `add_eos_token` (default false) say.
//!
//! Must not read tensor data; the JSON it returns is parsed by `tokenizers` in
//! [`crate::runtime::models::gguf_tokenizer`].

use serde_json::json;
use std::collections::HashMap;

/// What the SentencePiece builder needs from the metadata.
pub struct SpmVocab<'a> {
    /// `tokenizer.ggml.tokens`.
    pub tokens: &'a [String],
    /// `tokenizer.ggml.scores` (empty when the file has none).
    pub scores: &'a [f32],
    /// `tokenizer.ggml.merges`, when the file has them.
    pub merges: Option<&'a [String]>,
    /// The added tokens (control, user-defined and the named special tokens).
    pub added: Vec<serde_json::Value>,
    /// BOS token text and id, when BOS is added.
    pub bos: Option<(String, u32)>,
    /// EOS token text and id, when EOS is added.
    pub eos: Option<(String, u32)>,
}

/// The merges a vocabulary with scores implies, exactly as transformers' `generate_merges(vocab,
/// scores)`: for every token (in file order) each split into two pieces that are both in the
/// vocabulary, ordered by the pieces' ids; then all of them sorted by (score, left length, right
/// length) descending, ties keeping that order. Lengths are in characters.
pub fn merges_from_scores(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    // `{token: index}`: a repeated token keeps its last index; `dict(zip(tokens, scores))`: the
    // first position and the last score.
    let mut id: HashMap<&str, usize> = HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        id.insert(t.as_str(), i);
    }
    let mut order: Vec<&str> = Vec::new();
    let mut score: HashMap<&str, f32> = HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        let s = scores.get(i).copied().unwrap_or(0.0);
        if score.insert(t.as_str(), s).is_none() {
            order.push(t.as_str());
        }
    }
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    for t in order {
        let s = score[t];
        let mut local: Vec<(&str, &str, f32)> = t
            .char_indices()
            .skip(1)
            .map(|(at, _)| t.split_at(at))
            .filter(|(l, r)| id.contains_key(l) && id.contains_key(r))
            .map(|(l, r)| (l, r, s))
            .collect();
        local.sort_by_key(|(l, r, _)| (id[l], id[r]));
        merges.extend(local);
    }
    let key = |m: &(&str, &str, f32)| (m.2, m.0.chars().count(), m.1.chars().count());
    merges.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

/// The `tokenizer.json` of a SentencePiece GGUF vocabulary.
pub fn spm_tokenizer_json(v: &SpmVocab<'_>) -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = v
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let merges: Vec<serde_json::Value> = match v.merges {
        Some(m) => m
            .iter()
            .map(|s| {
                let (l, r) = s.split_once(' ').unwrap_or((s.as_str(), ""));
                json!([l, r])
            })
            .collect(),
        None => merges_from_scores(v.tokens, v.scores)
            .into_iter()
            .map(|(l, r)| json!([l, r]))
            .collect(),
    };
    let decoders = [
        json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
        json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}),
    ];
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": v.added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false},
        "post_processor": template(v.bos.as_ref(), v.eos.as_ref()),
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
}

/// transformers' `update_post_processor`: `[bos] $A [eos]`, and `[bos] $A [eos] [bos] $B [eos]`
/// for pairs, with only the tokens that are added.
fn template(bos: Option<&(String, u32)>, eos: Option<&(String, u32)>) -> serde_json::Value {
    let special =
        |t: &(String, u32), type_id: u32| json!({"SpecialToken": {"id": t.0, "type_id": type_id}});
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    for (part, type_id, out) in [("A", 0, &mut single), ("B", 1, &mut pair)] {
        out.extend(bos.map(|t| special(t, type_id)));
        out.push(seq(part, type_id));
        out.extend(eos.map(|t| special(t, type_id)));
    }
    let pair: Vec<serde_json::Value> = single.iter().cloned().chain(pair).collect();
    let mut tokens = serde_json::Map::new();
    for t in [bos, eos].into_iter().flatten() {
        tokens.insert(
            t.0.clone(),
            json!({"id": t.0, "ids": [t.1], "tokens": [t.0]}),
        );
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": tokens})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// `generate_merges({"a":0,"b":1,"c":2,"ab":3,"bc":4,"abc":5}, scores)` in Python gives
    /// `[("a","b"), ("b","c"), ("ab","c"), ("a","bc")]` for these scores.
    #[test]
    fn merges_follow_scores_then_lengths() {
        let tokens = s(&["a", "b", "c", "ab", "bc", "abc"]);
        let scores = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0];
        let m = merges_from_scores(&tokens, &scores);
        let want = [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(l, r)| (l.to_string(), r.to_string()))
            .collect();
        assert_eq!(m, want);
    }

    #[test]
    fn template_adds_only_the_tokens_asked_for() {
        let bos = ("<s>".to_string(), 1);
        let t = template(Some(&bos), None);
        assert_eq!(t["single"].as_array().unwrap().len(), 2);
        assert_eq!(t["pair"].as_array().unwrap().len(), 4);
        let none = template(None, None);
        assert_eq!(none["single"].as_array().unwrap().len(), 1);
    }
}
