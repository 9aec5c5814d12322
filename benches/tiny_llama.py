"""Writes a llama-shaped model folder for the memory and speed benches, with the standard library
only: config.json (hidden 512, 8 layers, 8 heads, SwiGLU MLP 1376, vocab 8000, untied head, as in
benches/train_vs_torch.py), model.safetensors (f32, small pseudo-random values, seeded) and the
tiny llama fixture's tokenizer; and data.jsonl: 64 rows of text longer than 128 tokens.

    python3 benches/tiny_llama.py OUT_DIR

It writes only into OUT_DIR (created; must not exist yet).
"""

import array
import json
import os
import random
import shutil
import struct
import sys

HIDDEN, LAYERS, HEADS, MLP, VOCAB = 512, 8, 8, 1376, 8000


def tensors():
    h, m = HIDDEN, MLP
    yield "model.embed_tokens.weight", [VOCAB, h]
    yield "lm_head.weight", [VOCAB, h]
    yield "model.norm.weight", [h]
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        for n in ("q", "k", "v", "o"):
            yield f"{p}.self_attn.{n}_proj.weight", [h, h]
        yield f"{p}.mlp.gate_proj.weight", [m, h]
        yield f"{p}.mlp.up_proj.weight", [m, h]
        yield f"{p}.mlp.down_proj.weight", [h, m]
        yield f"{p}.input_layernorm.weight", [h]
        yield f"{p}.post_attention_layernorm.weight", [h]


def main(out):
    os.makedirs(out)
    model = os.path.join(out, "model")
    os.makedirs(model)
    here = os.path.dirname(os.path.abspath(__file__))
    fixture = os.path.join(here, "..", "tests", "fixtures", "parity", "llama", "model")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(fixture, f), os.path.join(model, f))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": MLP, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": HEADS,
        "vocab_size": VOCAB, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "tie_word_embeddings": False,
        "hidden_act": "silu", "rope_theta": 10000.0,
    }
    with open(os.path.join(model, "config.json"), "w") as f:
        json.dump(config, f)
    rng = random.Random(17)
    # One block of pseudo-random values, repeated: the values only need to be small and finite.
    block = array.array("f", (rng.uniform(-0.05, 0.05) for _ in range(1 << 16))).tobytes()
    header, offset = {}, 0
    specs = list(tensors())
    for name, shape in specs:
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}
        offset += 4 * n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(os.path.join(model, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name, shape in specs:
            n = 4
            for d in shape:
                n *= d
            if name.endswith("norm.weight"):
                f.write(array.array("f", [1.0] * (n // 4)).tobytes())
                continue
            while n > 0:
                chunk = block[: min(n, len(block))]
                f.write(chunk)
                n -= len(chunk)
    words = ["the", "model", "reads", "a", "long", "line", "of", "text", "and", "learns", "it"]
    with open(os.path.join(out, "data.jsonl"), "w") as f:
        for i in range(64):
            text = " ".join(rng.choice(words) for _ in range(200))
            f.write(json.dumps({"text": f"{i} {text}"}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
