"""Builds the parity fixtures under tests/fixtures/parity/ (run with a Python that has tests/parity/requirements.txt installed).

Tiny random llama (GQA, llama3 rope scaling), qwen2 (qkv bias, tied embeddings), mistral
(one key/value head, explicit head_dim) and gpt2 models
are saved as Hugging Face folders (safetensors, tokenizer.json). LoRA adapters are applied with
PEFT (q,v; all-linear; rsLoRA; DoRA), their weights randomised so that they change the output,
and saved as PEFT folders. Reference logits (base, adapted, merged, weighted combinations) go to
`<arch>/reference.safetensors`. Everything is f32 and deterministic (seeded).
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from peft import LoraConfig, PeftModel, get_peft_model

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "parity")
VOCAB = 128

TEXT = [
    "the cat sat on the mat and the dog sat on the log",
    "low rank adapters make fine tuning cheap and fast",
    "a frozen base model with a small trainable update",
    "question: what is two plus two? answer: four",
    "hello world, this is a tiny tokenizer for tests",
] * 20


def make_tokenizer(path):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=[],
        show_progress=False,
    )
    tok.train_from_iterator(TEXT, trainer)
    tok.save(path)
    return tok


def write_tokenizer_files(folder, tok_path):
    shutil.copy(tok_path, os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "pad_token": "<pad>",
                "model_max_length": 64,
                "chat_template": "{% for m in messages %}{{ m['content'] }}\n{% endfor %}",
            },
            f,
            indent=2,
        )


def inputs():
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(3, VOCAB, (2, 8), generator=g)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 6:] = 0  # right padding on the second row
    ids[1, 6:] = 2
    return ids, mask


def randomise_adapter(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                if "magnitude" in name:
                    p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.2 * torch.randn(p.shape, generator=g))


def rewrite_base_path(out, arch):
    # A relative, machine-independent base path (the folder layout of the fixtures).
    path = os.path.join(out, "adapter_config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = f"../../model"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def logits(model, ids, mask):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.float().contiguous()


ARCHS = {
    "llama": (
        LlamaForCausalLM,
        LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            rms_norm_eps=1e-6,
            rope_theta=10000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        ),
        ["q_proj", "v_proj"],
    ),
    "qwen2": (
        Qwen2ForCausalLM,
        Qwen2Config(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        ),
        ["q_proj", "v_proj"],
    ),
    "mistral": (
        MistralForCausalLM,
        MistralConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=64,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            sliding_window=4096,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
        ),
        ["q_proj", "v_proj"],
    ),
    "gpt2": (
        GPT2LMHeadModel,
        GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        ),
        ["c_attn"],
    ),
}

VARIANTS = {
    "qv": dict(r=4, lora_alpha=8, lora_dropout=0.05),
    "all": dict(r=4, lora_alpha=8, target_modules="all-linear"),
    "rslora": dict(r=4, lora_alpha=8, use_rslora=True),
    "dora": dict(r=4, lora_alpha=8, use_dora=True),
    "second": dict(r=4, lora_alpha=16),
}


def build(arch, tok_path):
    cls, cfg, qv = ARCHS[arch]
    torch.manual_seed({"llama": 1, "qwen2": 2, "gpt2": 3, "mistral": 4}[arch])
    model = cls(cfg).float()
    with torch.no_grad():
        if arch == "qwen2":  # make the qkv biases visible
            for n, p in model.named_parameters():
                if n.endswith("proj.bias"):
                    p.normal_(0, 0.1)
        if arch == "gpt2":
            for n, p in model.named_parameters():
                if n.endswith(".bias") and "ln" not in n:
                    p.normal_(0, 0.05)
    folder = os.path.join(ROOT, arch, "model")
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    write_tokenizer_files(folder, tok_path)
    gen = os.path.join(folder, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

    ids, mask = inputs()
    ref = {"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64)}
    ref["base"] = logits(model, ids, mask)

    for i, (name, kw) in enumerate(VARIANTS.items()):
        kw = dict(kw)
        kw.setdefault("target_modules", qv)
        kw.setdefault("lora_dropout", 0.0)
        base = cls.from_pretrained(folder).float()
        peft_model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **kw))
        randomise_adapter(peft_model, 100 + i)
        ref[f"adapted.{name}"] = logits(peft_model, ids, mask)
        out = os.path.join(ROOT, arch, "adapters", name)
        peft_model.save_pretrained(out)
        os.remove(os.path.join(out, "README.md"))
        rewrite_base_path(out, arch)
        merged = peft_model.merge_and_unload()
        ref[f"merged.{name}"] = logits(merged, ids, mask)

    # Weighted combinations of two adapters with the same targets.
    base = cls.from_pretrained(folder).float()
    pm = PeftModel.from_pretrained(base, os.path.join(ROOT, arch, "adapters", "qv"), adapter_name="qv")
    pm.load_adapter(os.path.join(ROOT, arch, "adapters", "second"), adapter_name="second")
    pm.add_weighted_adapter(["qv", "second"], [0.7, 0.4], "lin", combination_type="linear")
    pm.add_weighted_adapter(["qv", "second"], [0.7, 0.4], "cat", combination_type="cat")
    pm.set_adapter("lin")
    ref["combo.linear"] = logits(pm, ids, mask)
    pm.set_adapter("cat")
    ref["combo.cat"] = logits(pm, ids, mask)

    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(ROOT, arch, "reference.safetensors"))
    print(arch, {k: tuple(v.shape) for k, v in ref.items()})


def main():
    os.makedirs(ROOT, exist_ok=True)
    tok_path = os.path.join(ROOT, "tokenizer.json")
    make_tokenizer(tok_path)
    archs = sys.argv[1:] or list(ARCHS)
    for arch in archs:
        shutil.rmtree(os.path.join(ROOT, arch), ignore_errors=True)
        build(arch, tok_path)


if __name__ == "__main__":
    main()
