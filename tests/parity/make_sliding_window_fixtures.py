"""Reference logits for sliding-window attention on the tiny mistral and qwen2 parity models.

Loads tests/fixtures/parity/{mistral,qwen2}/model with a window of 3 tokens (mistral: every
layer; qwen2: `use_sliding_window` with `max_window_layers = 1`, so only layer 1 slides) and
runs 2 x 12 tokens (the second row right-padded) through transformers with eager attention.
Writes tests/fixtures/parity/<arch>/sliding_window.safetensors: input_ids, attention_mask,
logits, and the window settings. Run with torch and transformers installed:

    python tests/parity/make_sliding_window_fixtures.py
"""

import os

import torch
from safetensors.torch import save_file
from transformers import MistralForCausalLM, Qwen2ForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "parity")
WINDOW = 3


def inputs():
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(3, 128, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0
    ids[1, 9:] = 2
    return ids, mask


def run(arch, cls, **overrides):
    folder = os.path.join(ROOT, arch, "model")
    model = cls.from_pretrained(folder, attn_implementation="eager", **overrides).float().eval()
    ids, mask = inputs()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float().contiguous()
        full = cls.from_pretrained(folder, attn_implementation="eager").float().eval()
        plain = full(input_ids=ids, attention_mask=mask).logits.float().contiguous()
    assert (logits - plain).abs().max() > 1e-3, "the window must change the logits"
    out = {
        "input_ids": ids.to(torch.int64),
        "attention_mask": mask.to(torch.int64),
        "logits": logits,
    }
    save_file(out, os.path.join(ROOT, arch, "sliding_window.safetensors"))
    print(arch, "max change from the window", float((logits - plain).abs().max()))


def main():
    run("mistral", MistralForCausalLM, sliding_window=WINDOW)
    # What `use_sliding_window` with `max_window_layers = 1` gives on a config without layer_types.
    run(
        "qwen2",
        Qwen2ForCausalLM,
        use_sliding_window=True,
        sliding_window=WINDOW,
        max_window_layers=1,
        layer_types=["full_attention", "sliding_attention"],
    )


if __name__ == "__main__":
    main()
