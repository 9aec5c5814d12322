"""Builds tests/fixtures/peft_format/: adapters saved by Hugging Face PEFT itself, one per
architecture and task class, with the logits PEFT computes with each.

Cases (bases are the tiny random models of tests/fixtures/parity/, plus a bare `BertModel`
checkpoint made here, shaped like all-MiniLM-L6-v2: no `bert.` prefix, no classifier):
- llama_qv      LlamaForCausalLM, q_proj + v_proj                          CAUSAL_LM
- llama_all     LlamaForCausalLM, all-linear, rsLoRA, dropout 0.05         CAUSAL_LM
- mistral_dora  MistralForCausalLM, q_proj + v_proj, DoRA                  CAUSAL_LM
- qwen2_all     Qwen2ForCausalLM, all-linear                               CAUSAL_LM
- gpt2_attn     GPT2LMHeadModel, c_attn + c_fc (Conv1D, fan_in_fan_out)    CAUSAL_LM
- bert_cls      BertForSequenceClassification, query + value               SEQ_CLS
- bert_bare_cls a bare BertModel checkpoint loaded as BertForSequenceClassification (2 labels),
                all-linear                                                  SEQ_CLS

Every adapter gets random A and B (`init_lora_weights=False`) and the classifier copy of
`modules_to_save` is perturbed, so each weight changes the output. Each case folder holds
`adapter/` (as `save_pretrained` wrote it, `base_model_name_or_path` replaced by the base's
fixture-relative path), `case.json` (base, class, labels) and `logits.safetensors` (inputs and
PEFT's logits). `lora_defaults.json` (next to this script's output) is `LoraConfig().to_dict()`.

Run with the pinned versions of tests/parity/requirements.txt:
    $PYTHON tests/parity/make_peft_format_fixtures.py
"""

import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures"))
OUT = os.path.join(FIXTURES, "peft_format")

CASES = [
    # name, base (relative to tests/fixtures), class, labels, LoraConfig kwargs
    ("llama_qv", "parity/llama/model", "causal", None,
     dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])),
    ("llama_all", "parity/llama/model", "causal", None,
     dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True, lora_dropout=0.05)),
    ("mistral_dora", "parity/mistral/model", "causal", None,
     dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True)),
    ("qwen2_all", "parity/qwen2/model", "causal", None,
     dict(r=4, lora_alpha=16, target_modules="all-linear")),
    ("gpt2_attn", "parity/gpt2/model", "causal", None,
     dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True)),
    ("bert_cls", "parity/bert/base", "seq_cls", 3,
     dict(r=4, lora_alpha=8, target_modules=["query", "value"])),
    ("bert_bare_cls", "peft_format/bert_bare", "seq_cls", 2,
     dict(r=4, lora_alpha=8, target_modules="all-linear")),
]


def load_base(folder, cls, labels):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(5)  # a new classifier (bare checkpoint) is initialised from this seed
    if cls == "causal":
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=labels, dtype=torch.float32).eval()


def inputs(cls):
    if cls == "causal":
        ref = load_file(os.path.join(FIXTURES, "parity", "llama", "reference.safetensors"))
        return {"input_ids": ref["input_ids"], "attention_mask": ref["attention_mask"]}
    ref = load_file(os.path.join(FIXTURES, "parity", "bert", "reference.safetensors"))
    ids = ref["input_ids"]
    return {"input_ids": ids, "attention_mask": ref["attention_mask"],
            "token_type_ids": torch.zeros_like(ids)}


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits.float().contiguous()


def make_bare_bert():
    """The BERT base saved as a bare `BertModel` (keys without `bert.`, no classifier)."""
    from transformers import BertForSequenceClassification

    folder = os.path.join(OUT, "bert_bare")
    src = os.path.join(FIXTURES, "parity", "bert", "base")
    full = BertForSequenceClassification.from_pretrained(src)
    full.bert.save_pretrained(folder, safe_serialization=True)
    for f in ("vocab.txt", "tokenizer.json"):
        shutil.copy(os.path.join(src, f), os.path.join(folder, f))
    cfg_path = os.path.join(folder, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["architectures"] = ["BertModel"]
    for k in ("id2label", "label2id"):
        cfg.pop(k, None)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def main():
    from peft import LoraConfig, get_peft_model

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    make_bare_bert()
    with open(os.path.join(OUT, "lora_defaults.json"), "w") as f:
        d = LoraConfig().to_dict()
        d = {k: (sorted(v) if isinstance(v, set) else v) for k, v in d.items()}
        json.dump(d, f, indent=2, sort_keys=True)
    for name, base, cls, labels, kwargs in CASES:
        folder = os.path.join(FIXTURES, base)
        task = "CAUSAL_LM" if cls == "causal" else "SEQ_CLS"
        cfg = LoraConfig(task_type=task, init_lora_weights=False, **kwargs)
        torch.manual_seed(11)
        model = get_peft_model(load_base(folder, cls, labels), cfg).eval()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "modules_to_save" in n:
                    p.add_(0.3 * torch.randn_like(p))
                if "lora_magnitude_vector" in n:
                    p.mul_(1.0 + 0.1 * torch.randn_like(p))
        batch = inputs(cls)
        case = os.path.join(OUT, name)
        adapter = os.path.join(case, "adapter")
        model.save_pretrained(adapter)
        for junk in ("README.md",):
            p = os.path.join(adapter, junk)
            if os.path.exists(p):
                os.remove(p)
        cfg_path = os.path.join(adapter, "adapter_config.json")
        with open(cfg_path) as f:
            saved = json.load(f)
        saved["base_model_name_or_path"] = base
        with open(cfg_path, "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
        tensors = {k: v.contiguous() for k, v in batch.items()}
        tensors["logits"] = logits(model, batch)
        tensors["base_logits"] = logits(load_base(folder, cls, labels), batch)
        assert (tensors["logits"] - tensors["base_logits"]).abs().max() > 1e-3, name
        save_file(tensors, os.path.join(case, "logits.safetensors"))
        with open(os.path.join(case, "case.json"), "w") as f:
            json.dump({"base": base, "class": cls, "labels": labels, "task_type": task}, f,
                      indent=2, sort_keys=True)
        print("wrote", name)


if __name__ == "__main__":
    main()
