"""Reference greedy generations for the `peftc serve` no-bleed test (tests/serve/).

Loads the tiny llama parity model (tests/fixtures/parity/llama/model) with transformers and each
LoRA adapter of tests/fixtures/parity/llama/adapters with PEFT, greedily generates
MAX_NEW tokens for every prompt (transformers' `generate`, do_sample=False, stopping at
`</s>`), and writes the prompt ids and generated ids to tests/fixtures/serve/greedy.json.
Run with the interpreter in $PYTHON (requirements pinned in requirements-serve.txt).
"""

import json
import os

import torch
from peft import PeftModel
from transformers import AutoTokenizer, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY = os.path.join(HERE, "..", "fixtures", "parity", "llama")
OUT = os.path.join(HERE, "..", "fixtures", "serve", "greedy.json")
ADAPTERS = ["qv", "second", "all", "rslora"]
PROMPTS = [
    "the cat sat on the mat",
    "low rank adapters make",
    "question: what is two plus two?",
    "hello world",
]
MAX_NEW = 12


def generate(model, ids):
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=MAX_NEW,
            do_sample=False,
            eos_token_id=1,
            pad_token_id=2,
        )
    new = out[0, len(ids):].tolist()
    if 1 in new:
        new = new[: new.index(1) + 1]
    return new


def main():
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(os.path.join(PARITY, "model"))
    prompts = [{"text": p, "ids": tok(p)["input_ids"]} for p in PROMPTS]
    outputs = {}
    base = LlamaForCausalLM.from_pretrained(os.path.join(PARITY, "model"), dtype=torch.float32)
    base.eval()
    outputs["base"] = [generate(base, p["ids"]) for p in prompts]
    for name in ADAPTERS:
        base = LlamaForCausalLM.from_pretrained(
            os.path.join(PARITY, "model"), dtype=torch.float32
        )
        model = PeftModel.from_pretrained(base, os.path.join(PARITY, "adapters", name))
        model.eval()
        outputs[name] = [generate(model, p["ids"]) for p in prompts]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"max_new_tokens": MAX_NEW, "prompts": prompts, "outputs": outputs}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
