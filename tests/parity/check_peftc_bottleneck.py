"""Loads the bottleneck adapter that peftc saved (tests/fixtures/parity/bert/peftc_houlsby/, written
by the Rust test `adapter_saved_by_peftc_loads_in_adapterhub_with_the_same_logits` with
PEFTC_REGEN_FIXTURES=1) into AdapterHub on the tiny base model and writes its logits on the
reference batch to tests/fixtures/parity/bert/peftc_houlsby_logits.safetensors.

Same environment as make_bert_fixtures.py (transformers 4.57 + adapters 1.3)."""
import os

import adapters
import torch
from safetensors.torch import load_file, save_file
from transformers import BertForSequenceClassification

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "parity", "bert")


def main():
    model = BertForSequenceClassification.from_pretrained(os.path.join(HERE, "base")).eval()
    adapters.init(model)
    name = model.load_adapter(os.path.join(HERE, "peftc_houlsby"), use_safetensors=True)
    model.set_active_adapters(name)
    ref = load_file(os.path.join(HERE, "reference.safetensors"))
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"],
                       token_type_ids=ref["token_type_ids"]).logits
    n = sum(p.numel() for n_, p in model.named_parameters() if f"adapters.{name}." in n_)
    assert n == 4 * (6 * 32 + 6 + 32 * 6 + 32), n  # width 6 recovered from the reduction factor
    save_file({"logits": logits.contiguous()}, os.path.join(HERE, "peftc_houlsby_logits.safetensors"))
    print(name, logits[0])


if __name__ == "__main__":
    main()
