"""Reference for peftc's classification head on decoders (tests/train/peft_llama_cls.rs).

A tiny Hugging Face LlamaForSequenceClassification (hidden 64, 2 layers, 4 heads, 2 KV heads,
vocab 128, 3 labels, pad_token_id 0, random init seed 0, eager attention) with PEFT LoRA (r 8,
alpha 16, q_proj + v_proj, random A and B: init_lora_weights=False, task SEQ_CLS, so PEFT saves the
`score` head in full as modules_to_save), trained 5 AdamW steps (lr 5e-3, weight decay 0.01) on
fixed batches of 2 x 12 (second row right-padded with id 0 from position 9, so the pooled token is
position 8). Writes tests/fixtures/train/peft_llama_cls/: config.json + model.safetensors (the base
with its `score.weight`), trainable_{init,final}.safetensors (names as named_parameters() without
the adapter name), the PEFT adapter PEFT saves (adapter/), and run.json with the batches, the loss
of each step and the logits of every batch after training (eval mode).

Run with the versions in requirements.txt beside this file:

    python -m pip install -r tests/parity/seq_cls/requirements.txt
    python tests/parity/seq_cls/make_seq_cls_fixtures.py
"""

import json
import os

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForSequenceClassification

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "train", "peft_llama_cls")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, rms_norm_eps=1e-6,
                      tie_word_embeddings=False, num_labels=3, pad_token_id=0, attn_implementation="eager")
    base = LlamaForSequenceClassification(cfg)
    os.makedirs(OUT, exist_ok=True)
    base.save_pretrained(OUT)
    lcfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                      task_type="SEQ_CLS", init_lora_weights=False)
    model = get_peft_model(base, lcfg)
    model.train()

    def trainable():
        return {n.replace(".default", ""): p.detach().clone().contiguous()
                for n, p in model.named_parameters() if p.requires_grad}

    save_file(trainable(), os.path.join(OUT, "trainable_init.safetensors"))
    g = torch.Generator().manual_seed(5)
    batches = []
    for _ in range(5):
        ids = torch.randint(1, 128, (2, 12), generator=g)
        mask = torch.ones(2, 12, dtype=torch.long)
        mask[1, 9:] = 0
        ids[1, 9:] = 0
        labels = torch.randint(0, 3, (2,), generator=g)
        batches.append({"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist()})
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3, weight_decay=0.01)
    losses = []
    for b in batches:
        res = model(input_ids=torch.tensor(b["input_ids"]), attention_mask=torch.tensor(b["attention_mask"]),
                    labels=torch.tensor(b["labels"]))
        res.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(res.loss.item())
    model.eval()
    with torch.no_grad():
        logits = [model(input_ids=torch.tensor(b["input_ids"]),
                        attention_mask=torch.tensor(b["attention_mask"])).logits.double().tolist()
                  for b in batches]
    save_file(trainable(), os.path.join(OUT, "trainable_final.safetensors"))
    model.save_pretrained(os.path.join(OUT, "adapter"))
    readme = os.path.join(OUT, "adapter", "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    with open(os.path.join(OUT, "run.json"), "w") as f:
        json.dump({"optimizer": {"kind": "adamw", "lr": 5e-3, "weight_decay": 0.01},
                   "lora": {"r": 8, "alpha": 16, "targets": sorted(lcfg.target_modules)},
                   "batches": batches, "losses": losses, "logits_after": logits}, f)
    print(OUT, losses)


if __name__ == "__main__":
    main()
