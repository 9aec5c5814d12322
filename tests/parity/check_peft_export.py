"""Loads an adapter folder written by peftc with Hugging Face PEFT and reports what PEFT saw.

Usage: check_peft_export.py CASE_DIR ADAPTER_DIR OUT_JSON

CASE_DIR is a case of tests/fixtures/peft_format/ (its case.json names the base and the task
class; logits.safetensors holds the inputs). OUT_JSON gets the keys PEFT wanted but the file
lacks (`missing`), the keys of the file PEFT has no place for (`unexpected`), and PEFT's logits
with the adapter loaded (`logits`, nested lists). Used by tests/peft_format/interop.rs.
"""

import json
import os
import sys

import torch
from peft import PeftModel
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file


def main():
    case_dir, adapter_dir, out_path = sys.argv[1:4]
    with open(os.path.join(case_dir, "case.json")) as f:
        case = json.load(f)
    fixtures = os.path.normpath(os.path.join(case_dir, ".."))
    base_dir = os.path.join(os.path.dirname(fixtures), case["base"])
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(5)
    if case["class"] == "causal":
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    else:
        base = AutoModelForSequenceClassification.from_pretrained(
            base_dir, num_labels=case["labels"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    wanted = set(get_peft_model_state_dict(model).keys())
    saved = set(load_file(os.path.join(adapter_dir, "adapter_model.safetensors")).keys())
    batch = load_file(os.path.join(case_dir, "logits.safetensors"))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    with torch.no_grad():
        logits = model(**inputs).logits.float()
    with open(out_path, "w") as f:
        json.dump({"missing": sorted(wanted - saved), "unexpected": sorted(saved - wanted),
                   "logits": logits.tolist()}, f)


if __name__ == "__main__":
    main()
