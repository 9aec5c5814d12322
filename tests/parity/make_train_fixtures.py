"""Reference numbers for peftc's training engine (tests/train/), computed with PyTorch and
transformers. Run with the project's venv:

    python3 tests/parity/make_train_fixtures.py

Writes tests/fixtures/train/{schedules,optim,loop}.json. Everything is float64 JSON; tensors are
nested lists. The tiny models below are mirrored line by line in tests/train/tiny.rs.

It also writes tests/fixtures/train/peft_{llama,bert}/: a tiny Hugging Face LlamaForCausalLM and a
tiny BertForSequenceClassification (random init, seed 0, dropout 0, eager attention) with PEFT LoRA
(r 8, alpha 16, random A and B: init_lora_weights=False), trained 5 AdamW steps on fixed batches:
base weights (model.safetensors + config.json), the trainable parameters before and after
(trainable_{init,final}.safetensors, names as in named_parameters() without the adapter name),
the saved PEFT adapter (adapter/), and batches + losses (run.json). For the model parts' parity
test of training through their architectures.
"""

import json
import math
import os
import tempfile

import torch
from transformers import (
    TrainingArguments,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "train")
torch.set_num_threads(1)


def tolist(t):
    return t.detach().double().tolist()


# ---------------------------------------------------------------- schedules
def schedule_cases():
    cases = []
    specs = [
        ("constant", {"steps": 0}, 10),
        ("constant", {"steps": 4}, 15),
        ("linear", {"steps": 0}, 12),
        ("linear", {"steps": 3}, 20),
        ("linear", {"fraction": 0.1}, 25),
        ("cosine", {"steps": 5}, 30),
        ("cosine", {"fraction": 0.06}, 47),
        ("cosine", {"steps": 0}, 9),
        ("linear", {"steps": 10}, 10),
    ]
    tmp = tempfile.mkdtemp()
    for kind, warm, total in specs:
        if "steps" in warm:
            w = warm["steps"]
        else:
            args = TrainingArguments(output_dir=tmp, warmup_steps=warm["fraction"], report_to=[])
            w = args.get_warmup_steps(total)
        base_lr = 3e-4
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base_lr)
        if kind == "constant":
            sch = get_constant_schedule_with_warmup(opt, w)
        elif kind == "linear":
            sch = get_linear_schedule_with_warmup(opt, w, total)
        else:
            sch = get_cosine_schedule_with_warmup(opt, w, total)
        lrs = []
        for _ in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        cases.append({"kind": kind, "warmup": warm, "total": total, "warmup_steps": w,
                      "base_lr": base_lr, "lrs": lrs})
    return cases


# ---------------------------------------------------------------- optimizers
def optim_cases():
    g = torch.Generator().manual_seed(1)
    init = {
        "layer.lora_A.weight": torch.randn(3, 4, generator=g),
        "layer.lora_B.weight": torch.randn(4, 3, generator=g) * 0.1,
        "head.bias": torch.randn(5, generator=g),
    }
    steps = 6
    grads = [{k: torch.randn(v.shape, generator=g) for k, v in init.items()} for _ in range(steps)]
    lrs = [1e-2, 8e-3, 6e-3, 4e-3, 2e-3, 1e-3]
    specs = [
        ("adamw_default", "adamw", {}, None),
        ("adamw_custom", "adamw", {"betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}, None),
        ("adamw_loraplus", "adamw", {"weight_decay": 0.05}, 16.0),
        ("sgd_plain", "sgd", {}, None),
        ("sgd_momentum", "sgd", {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, None),
        ("sgd_nesterov", "sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.02}, None),
    ]
    cases = []
    for name, kind, kw, ratio in specs:
        params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
        if ratio is None:
            groups = [{"params": list(params.values()), "lr_scale": 1.0}]
        else:
            # peft.optimizers.create_loraplus_optimizer's split: B = "lora_B" in the name or 1-D;
            # biases in B take no weight decay.
            def in_b(k, p):
                return "lora_B" in k or p.ndim == 1

            a = [p for k, p in params.items() if not in_b(k, p)]
            b = [p for k, p in params.items() if in_b(k, p) and "bias" not in k]
            b_nd = [p for k, p in params.items() if in_b(k, p) and "bias" in k]
            groups = [{"params": a, "lr_scale": 1.0}, {"params": b, "lr_scale": ratio},
                      {"params": b_nd, "lr_scale": ratio, "weight_decay": 0.0}]
        tg = [{"params": gr["params"], "lr": lrs[0] * gr["lr_scale"],
               **({"weight_decay": gr["weight_decay"]} if "weight_decay" in gr else {})} for gr in groups]
        opt = torch.optim.AdamW(tg, lr=lrs[0], **kw) if kind == "adamw" else torch.optim.SGD(tg, lr=lrs[0], **kw)
        after = []
        for s in range(steps):
            for gr, tgr in zip(groups, opt.param_groups):
                tgr["lr"] = lrs[s] * gr["lr_scale"]
            for k, p in params.items():
                p.grad = grads[s][k].clone()
            opt.step()
            after.append({k: tolist(p) for k, p in params.items()})
        cfg = dict(kw)
        if "betas" in cfg:
            cfg["betas"] = list(cfg["betas"])
        cases.append({"name": name, "kind": kind, "config": cfg, "lora_plus_ratio": ratio, "after": after})
    return {
        "init": {k: tolist(v) for k, v in init.items()},
        "grads": [{k: tolist(v) for k, v in gs.items()} for gs in grads],
        "lrs": lrs,
        "cases": cases,
    }


# ---------------------------------------------------------------- tiny models and loop
V, D, R, C = 32, 16, 4, 3
ALPHA = 8.0
SCALE = ALPHA / R


class Tiny(torch.nn.Module):
    """emb -> tanh(W1 h + b1 + s B1 A1 h) -> h + W2 h + s B2 A2 h -> head (LM or pooled classes)."""

    def __init__(self, g, classify):
        super().__init__()
        self.emb = torch.randn(V, D, generator=g) * 0.5
        self.w1 = torch.randn(D, D, generator=g) * 0.3
        self.b1 = torch.randn(D, generator=g) * 0.1
        self.w2 = torch.randn(D, D, generator=g) * 0.3
        self.head = torch.randn(V, D, generator=g) * 0.5
        self.a1 = torch.nn.Parameter(torch.randn(R, D, generator=g) * 0.3)
        self.bb1 = torch.nn.Parameter(torch.randn(D, R, generator=g) * 0.1)
        self.a2 = torch.nn.Parameter(torch.randn(R, D, generator=g) * 0.3)
        self.bb2 = torch.nn.Parameter(torch.randn(D, R, generator=g) * 0.1)
        self.classify = classify
        if classify:
            self.cls = torch.nn.Parameter(torch.randn(C, D, generator=g) * 0.3)

    def named(self):
        out = [
            ("base_model.model.l1.lora_A.weight", self.a1),
            ("base_model.model.l1.lora_B.weight", self.bb1),
            ("base_model.model.l2.lora_A.weight", self.a2),
            ("base_model.model.l2.lora_B.weight", self.bb2),
        ]
        if self.classify:
            out.append(("base_model.model.classifier.modules_to_save.default.weight", self.cls))
        return out

    def forward(self, ids, mask):
        h = self.emb[ids]
        h = torch.tanh(h @ self.w1.T + self.b1 + SCALE * ((h @ self.a1.T) @ self.bb1.T))
        h = h + h @ self.w2.T + SCALE * ((h @ self.a2.T) @ self.bb2.T)
        if not self.classify:
            return h @ self.head.T
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1)
        return pooled @ self.cls.T


def make_examples(g, n, classify):
    exs = []
    for _ in range(n):
        length = int(torch.randint(3, 9, (1,), generator=g))
        ids = torch.randint(1, V, (length,), generator=g).tolist()
        if classify:
            exs.append({"input_ids": ids, "labels": [], "class_label": int(torch.randint(0, C, (1,), generator=g))})
        else:
            prompt = int(torch.randint(0, 3, (1,), generator=g))
            labels = [-100] * prompt + ids[prompt:]
            exs.append({"input_ids": ids, "labels": labels, "class_label": None})
    return exs


def collate(exs):
    s = max(len(e["input_ids"]) for e in exs)
    ids = torch.tensor([e["input_ids"] + [0] * (s - len(e["input_ids"])) for e in exs])
    mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (s - len(e["input_ids"])) for e in exs])
    labels = None
    if exs[0]["labels"]:
        labels = torch.tensor([e["labels"] + [-100] * (s - len(e["labels"])) for e in exs])
    classes = None
    if exs[0]["class_label"] is not None:
        classes = torch.tensor([e["class_label"] for e in exs])
    return ids, mask, labels, classes


def run_loop(name, seed, classify, batch, accum, steps, opt_kind, opt_kw, lr, sched, warm, clip, ratio):
    g = torch.Generator().manual_seed(seed)
    model = Tiny(g, classify)
    exs = make_examples(g, steps * batch * accum, classify)
    init = {k: tolist(p) for k, p in model.named()}
    named = model.named()
    if ratio is None:
        groups = [{"params": [p for _, p in named], "lr": lr}]
    else:
        groups = [{"params": [p for k, p in named if "lora_B" not in k], "lr": lr},
                  {"params": [p for k, p in named if "lora_B" in k], "lr": lr * ratio}]
    if opt_kind == "adamw":
        opt = torch.optim.AdamW(groups, lr=lr, **opt_kw)
    else:
        opt = torch.optim.SGD(groups, lr=lr, **opt_kw)
    if sched == "linear":
        sch = get_linear_schedule_with_warmup(opt, warm, steps)
    elif sched == "cosine":
        sch = get_cosine_schedule_with_warmup(opt, warm, steps)
    else:
        sch = get_constant_schedule_with_warmup(opt, warm)
    losses = []
    grad_norms = []
    pos = 0
    for _ in range(steps):
        micro = []
        for _ in range(accum):
            micro.append(collate(exs[pos:pos + batch]))
            pos += batch
        window_tokens = sum(int((lb[:, 1:] != -100).sum()) for _, _, lb, _ in micro) if not classify else 0
        step_loss = 0.0
        for ids, mask, labels, classes in micro:
            logits = model(ids, mask)
            if classify:
                loss = torch.nn.functional.cross_entropy(logits, classes) / len(micro)
            else:
                sl = logits[:, :-1, :].reshape(-1, V)
                tl = labels[:, 1:].reshape(-1)
                loss = torch.nn.functional.cross_entropy(sl, tl, ignore_index=-100, reduction="sum") / window_tokens
            loss.backward()
            step_loss += loss.item()
        if clip is not None:
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in named], clip)))
        opt.step()
        sch.step()
        opt.zero_grad(set_to_none=True)
        losses.append(step_loss)
    cfg = {"batch_size": batch, "accumulate": accum, "steps": steps, "optimizer": opt_kind,
           "optimizer_config": opt_kw, "lr": lr, "schedule": sched, "warmup_steps": warm,
           "max_grad_norm": clip, "lora_plus_ratio": ratio}
    return {
        "name": name,
        "seed": seed,
        "classify": classify,
        "config": cfg,
        "frozen": {"emb": tolist(model.emb), "w1": tolist(model.w1), "b1": tolist(model.b1),
                   "w2": tolist(model.w2), "head": tolist(model.head)},
        "init": init,
        "examples": exs,
        "losses": losses,
        "grad_norms": grad_norms,
        "final": {k: tolist(p) for k, p in model.named()},
    }


def loop_cases():
    return {
        "dims": {"vocab": V, "hidden": D, "rank": R, "classes": C, "scale": SCALE},
        "runs": [
            run_loop("causal_adamw_linear_clip", 10, False, 4, 1, 5, "adamw",
                     {"weight_decay": 0.01}, 1e-2, "linear", 2, 1.0, None),
            run_loop("causal_sgd_accum_nesterov", 11, False, 2, 2, 5, "sgd",
                     {"momentum": 0.9, "nesterov": True}, 5e-2, "constant", 0, None, None),
            run_loop("classify_adamw_loraplus_cosine", 12, True, 4, 2, 5, "adamw",
                     {"weight_decay": 0.1}, 5e-3, "cosine", 1, 0.5, 16.0),
        ],
    }


def peft_case(kind):
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file

    torch.manual_seed(0)
    if kind == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, rms_norm_eps=1e-6,
                          tie_word_embeddings=False, attn_implementation="eager")
        base = LlamaForCausalLM(cfg)
        lcfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                          task_type="CAUSAL_LM", init_lora_weights=False)
    else:
        from transformers import BertConfig, BertForSequenceClassification

        cfg = BertConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, max_position_embeddings=64, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, num_labels=3, attn_implementation="eager")
        base = BertForSequenceClassification(cfg)
        lcfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"],
                          task_type="SEQ_CLS", init_lora_weights=False)
    out = os.path.join(OUT, f"peft_{kind}")
    os.makedirs(out, exist_ok=True)
    base.save_pretrained(out)
    model = get_peft_model(base, lcfg)
    model.train()

    def trainable():
        return {n.replace(".default", ""): p.detach().clone().contiguous()
                for n, p in model.named_parameters() if p.requires_grad}

    save_file(trainable(), os.path.join(out, "trainable_init.safetensors"))
    g = torch.Generator().manual_seed(5)
    batches = []
    for _ in range(5):
        ids = torch.randint(1, 128, (2, 12), generator=g)
        mask = torch.ones(2, 12, dtype=torch.long)
        mask[1, 9:] = 0
        ids[1, 9:] = 0
        if kind == "llama":
            labels = ids.clone()
            labels[0, :3] = -100
            labels[1, 9:] = -100
        else:
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
    save_file(trainable(), os.path.join(out, "trainable_final.safetensors"))
    model.save_pretrained(os.path.join(out, "adapter"))
    readme = os.path.join(out, "adapter", "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({"optimizer": {"kind": "adamw", "lr": 5e-3, "weight_decay": 0.01},
                   "lora": {"r": 8, "alpha": 16, "targets": sorted(lcfg.target_modules)},
                   "batches": batches, "losses": losses}, f)
    print(out, losses)


def main():
    os.makedirs(OUT, exist_ok=True)
    peft_case("llama")
    peft_case("bert")
    for name, data in [("schedules", schedule_cases()), ("optim", optim_cases()), ("loop", loop_cases())]:
        path = os.path.join(OUT, f"{name}.json")
        with open(path, "w") as f:
            json.dump(data, f, indent=None, separators=(",", ":"))
        print(path, os.path.getsize(path))


if __name__ == "__main__":
    main()
