"""Checks a merged model exported by `peftc run ... as merged` against PEFT.

Usage: check_merged_export.py BASE_DIR ADAPTER_DIR MERGED_DIR IDS_JSON OUT_JSON [seq_cls]

Loads MERGED_DIR with transformers (recording missing / unexpected keys), and BASE_DIR + the PEFT
adapter ADAPTER_DIR merged with PEFT's `merge_and_unload`; writes both models' logits' largest
difference over the unpadded tokens of IDS_JSON (a list of token-id lists) to OUT_JSON. With
`seq_cls` the models are sequence classifiers (one row of logits per input).
Used by tests/pipeline/adapters.rs; requirements pinned in tests/parity/requirements.txt.
"""

import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification


def main():
    base_dir, adapter_dir, merged_dir, ids_path, out_path = sys.argv[1:6]
    seq_cls = sys.argv[6:7] == ["seq_cls"]
    auto = AutoModelForSequenceClassification if seq_cls else AutoModelForCausalLM
    rows = json.load(open(ids_path))
    n = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (n - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
    merged, info = auto.from_pretrained(
        merged_dir, dtype=torch.float32, output_loading_info=True
    )
    extra = {}
    if seq_cls:
        # The adapter's trained head (modules_to_save) replaces the base's, whatever its size.
        extra = dict(num_labels=merged.config.num_labels, ignore_mismatched_sizes=True)
    reference = PeftModel.from_pretrained(
        auto.from_pretrained(base_dir, dtype=torch.float32, **extra), adapter_dir
    ).merge_and_unload()
    merged.eval()
    reference.eval()
    with torch.no_grad():
        a = merged(input_ids=ids, attention_mask=mask).logits
        b = reference(input_ids=ids, attention_mask=mask).logits
    if seq_cls:
        diff = (a - b).abs().max().item()
    else:
        diff = ((a - b).abs() * mask.unsqueeze(-1)).max().item()
    out = {
        "missing": sorted(info["missing_keys"]),
        "unexpected": sorted(info["unexpected_keys"]),
        "max_diff": diff,
    }
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main()
