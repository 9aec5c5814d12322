"""Reference numbers for the real-model tests (tests/fixtures/real/), computed from the assets that
scripts/fetch-assets.sh puts under $PEFTC_TEST_ASSETS (default target/assets).

- minilm_embeddings.json: all-MiniLM-L6-v2 sentence embeddings as sentence-transformers computes
  them (masked mean pooling of the last hidden state, then L2 normalisation), with transformers.
- smollm2_reference.json: token ids of fixed strings with the tokenizer built from the GGUF metadata
  (same structure as the converter in shared research notes, via the `tokenizers` package), and a
  slice of layer 0's q_proj / k_proj dequantized with gguf-py (NumPy) and un-permuted to HF order.

Usage: python tests/parity/make_real_references.py   (needs torch, transformers, gguf, tokenizers)
"""
import json
import os

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ASSETS = os.environ.get("PEFTC_TEST_ASSETS", os.path.join(ROOT, "target", "assets"))
OUT = os.path.join(ROOT, "tests", "fixtures", "real")
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.",
             "The new movie is awesome.", "Adapters train only a few parameters."]
TOKENIZER_STRINGS = ["In 2024, 1,234 people can't", "Héllo wörld — naïve café 🙂",
                     "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"]


def minilm():
    import torch
    from transformers import AutoModel, AutoTokenizer
    path = os.path.join(ASSETS, "all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
    return {"sentences": SENTENCES, "input_ids": enc["input_ids"].tolist(), "embeddings": emb.tolist()}


def smollm2():
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from tokenizers import Tokenizer
    r = GGUFReader(os.path.join(ASSETS, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    f = lambda k: r.fields[k].contents()
    toks, merges, ttype = f("tokenizer.ggml.tokens"), f("tokenizer.ggml.merges"), f("tokenizer.ggml.token_type")
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, (t, ty) in enumerate(zip(toks, ttype)) if ty == 3]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, bl]},
          "post_processor": dict(bl, trim_offsets=False), "decoder": bl,
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": {t: i for i, t in enumerate(toks)}, "merges": list(merges)}}
    tok = Tokenizer.from_str(json.dumps(tj))
    ids = [tok.encode(s, add_special_tokens=False).ids for s in TOKENIZER_STRINGS]
    n_head, n_kv = f("llama.attention.head_count"), f("llama.attention.head_count_kv")

    def unpermute(w, heads):
        o, i = w.shape
        return w.reshape(heads, o // heads // 2, 2, i).swapaxes(1, 2).reshape(o, i)

    out = {"strings": TOKENIZER_STRINGS, "ids": ids}
    for name, hf, heads in [("blk.0.attn_q.weight", "q_proj", n_head), ("blk.0.attn_k.weight", "k_proj", n_kv)]:
        t = next(t for t in r.tensors if t.name == name)
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(tuple(int(x) for x in reversed(t.shape)))
        w = unpermute(w, heads)
        # rows 0..70 cross the first head boundary (64) and the interleave; first 16 columns.
        out[hf] = {"shape": list(w.shape), "rows": 70, "cols": 16, "values": w[:70, :16].tolist(),
                   "row_sums": w.sum(axis=1).tolist()}
    # NumPy forward of the whole model (f32, HF layout) on a short prompt: last-position logits.
    prompt_ids = tok.encode("The capital of France is", add_special_tokens=False).ids
    out["forward"] = numpy_forward(r, prompt_ids, n_head, n_kv, unpermute, f)
    t = next(t for t in r.tensors if t.name == "blk.0.attn_norm.weight")
    out["input_layernorm_first8"] = np.asarray(t.data, dtype=np.float32)[:8].tolist()
    return out


def numpy_forward(r, ids, n_head, n_kv, unpermute, f):
    from gguf.quants import dequantize
    W = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(tuple(int(x) for x in reversed(t.shape)))
        if t.name.endswith("attn_q.weight"):
            w = unpermute(w, n_head)
        if t.name.endswith("attn_k.weight"):
            w = unpermute(w, n_kv)
        W[t.name] = w
    d = f("llama.embedding_length")
    hd = d // n_head
    eps = float(f("llama.attention.layer_norm_rms_epsilon"))
    theta = float(f("llama.rope.freq_base"))
    s = len(ids)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    fr = np.outer(np.arange(s), inv)
    fr = np.concatenate([fr, fr], -1)
    cos, sin = np.cos(fr).astype(np.float32), np.sin(fr).astype(np.float32)

    def rope(x):  # x: (heads, s, hd)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    x = W["token_embd.weight"][ids]
    mask = np.triu(np.full((s, s), -np.inf, dtype=np.float32), 1)
    for i in range(f("llama.block_count")):
        b = lambda n: W[f"blk.{i}.{n}.weight"]
        h = rms(x, b("attn_norm"))
        q = rope((h @ b("attn_q").T).reshape(s, n_head, hd).transpose(1, 0, 2))
        k = rope((h @ b("attn_k").T).reshape(s, n_kv, hd).transpose(1, 0, 2))
        v = (h @ b("attn_v").T).reshape(s, n_kv, hd).transpose(1, 0, 2)
        k, v = np.repeat(k, n_head // n_kv, 0), np.repeat(v, n_head // n_kv, 0)
        a = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        a = a / a.sum(-1, keepdims=True)
        x = x + (a @ v).transpose(1, 0, 2).reshape(s, d) @ b("attn_output").T
        h = rms(x, b("ffn_norm"))
        g = h @ b("ffn_gate").T
        x = x + ((g / (1 + np.exp(-g))) * (h @ b("ffn_up").T)) @ b("ffn_down").T
    logits = rms(x[-1], W["output_norm.weight"]) @ W["token_embd.weight"].T
    return {"ids": ids, "logits_first64": logits[:64].tolist(), "argmax": int(logits.argmax()),
            "max": float(logits.max()), "logsumexp": float(np.log(np.exp(logits - logits.max()).sum()) + logits.max())}


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "minilm_embeddings.json"), "w") as fh:
        json.dump(minilm(), fh)
    with open(os.path.join(OUT, "smollm2_reference.json"), "w") as fh:
        json.dump(smollm2(), fh, ensure_ascii=False)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
