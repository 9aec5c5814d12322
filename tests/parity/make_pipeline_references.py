"""References for the pipeline tests of adapter options (tests/pipeline/adapters.rs), made with
transformers + PEFT on the tiny llama of tests/fixtures/parity/llama/model.

    pip install -r tests/parity/requirements.txt
    python tests/parity/make_pipeline_references.py

For each case, PEFT's `get_peft_model` with the case's LoraConfig (r 4, alpha 8, q_proj + v_proj,
dropout 0) is trained 5 AdamW steps (lr 1e-2, betas 0.9/0.999, eps 1e-8, no weight decay, constant
schedule) on one batch holding all of TRAIN (right-padded, loss on every token, as peftc's `text`
datasets: the tokenizer's special tokens, then EOS), the whole batch at every step. LoRA+ goes
through PEFT's `create_loraplus_optimizer`. PiSSA and OLoRA adapters are saved as PEFT saves
them for use on the original base (`path_initial_model_for_weight_conversion`).

Writes tests/fixtures/pipeline/references.json (per case: the loss of every step, the eval loss
over EVAL after training, the saved adapter's r / lora_alpha / init_lora_weights) and
<case>_logits.safetensors (logits over EVAL of the trained model; for LoRA the script checks
that the saved adapter on the original base gives the same within 1e-4).
"""

import json
import os
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "fixtures", "parity", "llama", "model")
OUT = os.path.join(HERE, "..", "fixtures", "pipeline")
torch.set_num_threads(1)

TRAIN = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "birds sing at dawn",
    "the sun is warm today",
    "rain falls on the roof",
    "we read a good book",
    "fish swim in the sea",
    "the tree has green leaves",
]
EVAL = [
    "the dog sat on the roof",
    "a cat ran in the rain",
    "we sing a good song",
    "the sea is warm",
]
LR = 1e-2
STEPS = 5
PAD, EOS = 2, 1

CASES = {
    "pissa": dict(init_lora_weights="pissa"),
    "olora": dict(init_lora_weights="olora"),
    "pissa_loraplus": dict(init_lora_weights="pissa", loraplus_ratio=16.0),
    "pissa_rslora_dora": dict(init_lora_weights="pissa", use_rslora=True, use_dora=True),
}


def encode(texts):
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    rows = []
    for t in texts:
        ids = tok.encode(t).ids
        if not ids or ids[-1] != EOS:
            ids = ids + [EOS]
        rows.append(ids)
    n = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [PAD] * (n - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
    labels = input_ids.clone()
    labels[mask == 0] = -100
    return rows, input_ids, mask, labels


def token_loss(logits, labels):
    """Mean cross-entropy over every counted token (the shifted causal LM loss)."""
    lg = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    lb = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(lg.double(), lb, ignore_index=-100)


def base():
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def run_case(name, opts):
    opts = dict(opts)
    ratio = opts.pop("loraplus_ratio", None)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, **opts)
    model = get_peft_model(base(), cfg)
    tmp = tempfile.mkdtemp()
    init_dir = os.path.join(tmp, "init")
    model.save_pretrained(init_dir)
    _, ids, mask, labels = encode(TRAIN)
    if ratio is None:
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    else:
        opt = create_loraplus_optimizer(
            model, optimizer_cls=torch.optim.AdamW, lr=LR, loraplus_lr_ratio=ratio,
            betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
        )
    losses = []
    model.train()
    for _ in range(STEPS):
        out = model(input_ids=ids, attention_mask=mask)
        loss = token_loss(out.logits, labels).float()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    _, eids, emask, elabels = encode(EVAL)
    with torch.no_grad():
        trained_logits = model(input_ids=eids, attention_mask=emask).logits
        eval_loss = token_loss(trained_logits, elabels).item()
    saved = os.path.join(tmp, "saved")
    model.save_pretrained(saved, path_initial_model_for_weight_conversion=init_dir)
    with open(os.path.join(saved, "adapter_config.json")) as f:
        saved_cfg = json.load(f)
    # The saved (converted) adapter on the original base, as a user loads it.
    reloaded = PeftModel.from_pretrained(base(), saved)
    reloaded.eval()
    with torch.no_grad():
        logits = reloaded(input_ids=eids, attention_mask=emask).logits
    # PEFT's conversion is exact for LoRA; it drops a DoRA magnitude (peftc keeps it), so the
    # reference is the trained model itself.
    if not cfg.use_dora:
        diff = (logits - trained_logits).abs().max().item()
        assert diff < 1e-4, f"{name}: saved adapter differs from the trained model by {diff}"
    save_file({"logits": trained_logits.contiguous(), "attention_mask": emask.float()},
              os.path.join(OUT, f"{name}_logits.safetensors"))
    return {
        "losses": losses,
        "eval_loss": eval_loss,
        "saved_r": saved_cfg["r"],
        "saved_alpha": saved_cfg["lora_alpha"],
        "saved_init": saved_cfg["init_lora_weights"],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    rows, _, _, _ = encode(TRAIN)
    erows, _, _, _ = encode(EVAL)
    refs = {"train": TRAIN, "eval": EVAL, "train_ids": rows, "eval_ids": erows, "cases": {}}
    for name, opts in CASES.items():
        refs["cases"][name] = run_case(name, opts)
        print(name, refs["cases"][name])
    with open(os.path.join(OUT, "references.json"), "w") as f:
        json.dump(refs, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
