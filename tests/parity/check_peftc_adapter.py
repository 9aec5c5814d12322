"""Loads a peftc-saved adapter with transformers + PEFT and writes its logits.

Usage: check_peftc_adapter.py MODEL_DIR ADAPTER_DIR REFERENCE_SAFETENSORS OUT_SAFETENSORS

REFERENCE_SAFETENSORS provides `input_ids` and `attention_mask`; OUT gets `logits` and
`merged` (after merge_and_unload). Used by tests/runtime_models/reverse.rs.
"""

import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM


def main():
    model_dir, adapter_dir, ref_path, out_path = sys.argv[1:5]
    ref = load_file(ref_path)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
        merged = model.merge_and_unload()
        merged_logits = merged(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).logits
    save_file({"logits": logits.contiguous(), "merged": merged_logits.contiguous()}, out_path)


if __name__ == "__main__":
    main()
