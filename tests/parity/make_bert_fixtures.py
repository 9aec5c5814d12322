"""Builds the BERT parity fixtures under tests/fixtures/parity/bert/.

A tiny random BertForSequenceClassification (hidden 32, 2 layers, 4 heads, 3 labels) with a tiny
WordPiece tokenizer, two PEFT LoRA adapters (query+value; all-linear with the classifier in
modules_to_save) and two AdapterHub bottleneck adapters (Houlsby = DoubleSeqBnConfig, Pfeiffer =
SeqBnConfig), plus the reference logits of each on a padded batch (reference.safetensors).

Needs torch, transformers 4.57 (the `adapters` package 1.3 does not run on transformers 5), peft,
adapters, tokenizers, safetensors:
    pip install --target AH "transformers==4.57.6" "huggingface_hub<1" "tokenizers<0.23" adapters
    PYTHONPATH=AH python tests/parity/make_bert_fixtures.py
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "parity", "bert")
torch.manual_seed(0)

WORDS = ("the a cat dog sat on mat ran fast slow good bad movie film was is not very "
         "and it this that lora adapter model peft").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["##s", "##ing", "##ed", "##er"] + \
    list("bcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrtuvwxyz"]
SENTENCES = ["the cat sat on the mat", "a very good movie", "this film was not bad at all and it ran fast",
             "peft adapters"]


def make_base(path):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    tok = BertWordPieceTokenizer(os.path.join(path, "vocab.txt"), lowercase=True)
    tok.save(os.path.join(path, "tokenizer.json"))
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64, type_vocab_size=2, num_labels=3,
                     layer_norm_eps=1e-12, hidden_act="gelu", initializer_range=0.2)
    model = BertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases so every parameter matters
        for n, p in model.named_parameters():
            if "LayerNorm" in n or n.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(path, safe_serialization=True)
    return tok


def batch(tok):
    encs = [tok.encode(s) for s in SENTENCES]
    n = max(len(e.ids) for e in encs)
    ids = torch.zeros(len(encs), n, dtype=torch.long)
    mask = torch.zeros(len(encs), n, dtype=torch.long)
    types = torch.zeros(len(encs), n, dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
    types[2, 4:len(encs[2].ids)] = 1  # one row with a second segment
    return ids, mask, types


def load_base(path):
    from transformers import BertForSequenceClassification
    return BertForSequenceClassification.from_pretrained(path).eval()


def logits(model, ids, mask, types):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.float().contiguous()


def main():
    from peft import LoraConfig, get_peft_model
    import adapters
    from adapters import DoubleSeqBnConfig, SeqBnConfig

    shutil.rmtree(OUT, ignore_errors=True)
    base_dir = os.path.join(OUT, "base")
    tok = make_base(base_dir)
    ids, mask, types = batch(tok)
    ref = {"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64),
           "token_type_ids": types.to(torch.int64)}
    base = load_base(base_dir)
    ref["base_logits"] = logits(base, ids, mask, types)
    with torch.no_grad():
        out = base.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
    ref["base_last_hidden"] = out.last_hidden_state.contiguous()
    ref["base_pooled"] = out.pooler_output.contiguous()
    m = mask.unsqueeze(-1).float()
    ref["base_mean_pooled"] = ((out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)).contiguous()

    # PEFT LoRA: query+value; all-linear + classifier in modules_to_save. B random so it matters.
    for name, cfg in [
        ("lora_qv", LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False,
                               task_type="SEQ_CLS", modules_to_save=[])),
        ("lora_all", LoraConfig(r=4, lora_alpha=16, target_modules="all-linear", init_lora_weights=False,
                                task_type="SEQ_CLS", modules_to_save=["classifier"])),
    ]:
        torch.manual_seed(1)
        model = get_peft_model(load_base(base_dir), cfg).eval()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "modules_to_save" in n:
                    p.add_(0.2 * torch.randn_like(p))
        ref[f"{name}_logits"] = logits(model, ids, mask, types)
        model.save_pretrained(os.path.join(OUT, name))

    # AdapterHub bottleneck adapters on the same base.
    for name, cfg in [
        ("houlsby", DoubleSeqBnConfig(reduction_factor=4, non_linearity="relu")),
        ("pfeiffer", SeqBnConfig(reduction_factor=8, non_linearity="gelu")),
        ("houlsby_silu", DoubleSeqBnConfig(reduction_factor=4, non_linearity="silu")),
    ]:
        torch.manual_seed(2)
        model = load_base(base_dir)
        adapters.init(model)
        model.add_adapter(name, config=cfg)
        model.eval()
        model.set_active_adapters(name)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if f"adapters.{name}." in n:
                    p.copy_(0.3 * torch.randn_like(p))
        ref[f"{name}_logits"] = logits(model, ids, mask, types)
        assert (ref[f"{name}_logits"] - ref["base_logits"]).abs().max() > 1e-3, name
        model.save_adapter(os.path.join(OUT, name), name, use_safetensors=True)
    # pytorch_adapter.bin may be written next to the safetensors file; keep only safetensors.
    for root, _, files in os.walk(OUT):
        for f in files:
            if f.endswith(".bin") or f.startswith("head_config") or f.startswith("model_head") or f == "README.md":
                os.remove(os.path.join(root, f))
    # Name the base model relatively, not by this machine's path.
    for name in ("lora_qv", "lora_all", "houlsby", "pfeiffer", "houlsby_silu"):
        path = os.path.join(OUT, name, "adapter_config.json")
        with open(path) as f:
            cfg = json.load(f)
        for key in ("base_model_name_or_path", "model_name"):
            if key in cfg:
                cfg[key] = "base"
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "reference.safetensors"))
    with open(os.path.join(OUT, "sentences.json"), "w") as f:
        json.dump(SENTENCES, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
