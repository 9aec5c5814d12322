"""Checks a merged model exported by `peftc run ... as merged` against PEFT.

Usage: check_merged_export.py BASE_DIR ADAPTER_DIR MERGED_DIR IDS_JSON OUT_JSON

Loads MERGED_DIR with transformers (recording missing / unexpected keys), and BASE_DIR + the PEFT
adapter ADAPTER_DIR merged with PEFT's `merge_and_unload`; writes both models' logits' largest
difference over the unpadded tokens of IDS_JSON (a list of token-id lists) to OUT_JSON.
Used by tests/pipeline/adapters.rs; requirements pinned in tests/parity/requirements.txt.
"""

import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def main():
    base_dir, adapter_dir, merged_dir, ids_path, out_path = sys.argv[1:6]
    rows = json.load(open(ids_path))
    n = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (n - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
    merged, info = AutoModelForCausalLM.from_pretrained(
        merged_dir, dtype=torch.float32, output_loading_info=True
    )
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), adapter_dir
    ).merge_and_unload()
    merged.eval()
    reference.eval()
    with torch.no_grad():
        a = merged(input_ids=ids, attention_mask=mask).logits
        b = reference(input_ids=ids, attention_mask=mask).logits
    diff = ((a - b).abs() * mask.unsqueeze(-1)).max().item()
    out = {
        "missing": sorted(info["missing_keys"]),
        "unexpected": sorted(info["unexpected_keys"]),
        "max_diff": diff,
    }
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main()
