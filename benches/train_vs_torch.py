"""Side by side: one LoRA training step (forward, causal LM loss, backward, AdamW) of peftc's loop
(benches/train.rs) and of PyTorch on the same llama-shaped stack, and the ratio peftc / PyTorch.

The model is the same llama on both sides: peftc's runtime llama (benches/train.rs) and
transformers' LlamaForCausalLM (eager attention) with PEFT's LoRA (r 16, alpha 32 on q,v or on
every linear layer); hidden 512, 8 layers, 8 heads, SwiGLU MLP 1376, untied head 8000; fp32;
frozen base.
Method as /work/shared/research/baseline/bench.py: 2 threads, 3 warm-up steps, median of 20,
a new batch of random tokens every step, labels = input ids.

    python benches/train_vs_torch.py                   # builds and runs `cargo bench --bench train`
    PEFTC_BENCH_BIN=target/.../train-xxxx python benches/train_vs_torch.py   # a prebuilt bench
    PEFTC_BENCH_STEPS=5 PEFTC_BENCH_WARMUP=1 ...       # shorter

Env: PEFTC_BENCH_{STEPS,WARMUP,BATCH,SEQ,CASES}, BENCH_THREADS (2). Run it on an idle machine:
both sides spin-wait in their thread pools, so other load distorts the numbers badly.
"""

import json
import os
import statistics
import subprocess
import sys
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))
import torch  # noqa: E402

HIDDEN, LAYERS, HEADS, MLP, VOCAB, RANK, ALPHA, EPS = 512, 8, 8, 1376, 8000, 16, 32.0, 1e-6
STEPS = int(os.environ.get("PEFTC_BENCH_STEPS", "20"))
WARMUP = int(os.environ.get("PEFTC_BENCH_WARMUP", "3"))
BATCH = int(os.environ.get("PEFTC_BENCH_BATCH", "8"))
SEQ = int(os.environ.get("PEFTC_BENCH_SEQ", "128"))
CASES = os.environ.get("PEFTC_BENCH_CASES", "lora_qv,lora_all").split(",")


def build(all_linear):
    """transformers' LlamaForCausalLM (eager attention, fp32) with PEFT's LoRA, the config of
    benches/train.rs."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=HEADS, vocab_size=VOCAB,
        max_position_embeddings=2048, rms_norm_eps=EPS, tie_word_embeddings=False,
        attn_implementation="eager",
    )
    base = LlamaForCausalLM(config)
    targets = "all-linear" if all_linear else ["q_proj", "v_proj"]
    return get_peft_model(base, LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=targets))


def torch_case(case):
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    model = build(case == "lora_all")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(WARMUP + STEPS):
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
        t0 = time.perf_counter()
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[WARMUP:])
    return {"side": "torch", "case": case, "trainable": sum(p.numel() for p in params),
            "median_step_s": med, "tokens_per_s": BATCH * SEQ / med}


def peftc_cases():
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS), PEFTC_BENCH_CASES=",".join(CASES))
    binary = os.environ.get("PEFTC_BENCH_BIN")
    cmd = [binary] if binary else ["cargo", "bench", "--bench", "train"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    rust = {r["case"]: r for r in peftc_cases()}
    print(f"| case | batch x seq | trainable | peftc s/step | torch s/step | peftc / torch |")
    print(f"|---|---|---:|---:|---:|---:|")
    for case in CASES:
        t = torch_case(case)
        r = rust.get(case)
        if r is None:
            print(f"peftc bench printed no `{case}`", file=sys.stderr)
            continue
        assert r["trainable"] == t["trainable"], (r["trainable"], t["trainable"])
        print(f"| {case} | {BATCH}x{SEQ} | {t['trainable']:,} | {r['median_step_s']:.3f} | "
              f"{t['median_step_s']:.3f} | {r['median_step_s'] / t['median_step_s']:.2f} |")


if __name__ == "__main__":
    main()
