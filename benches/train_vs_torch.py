"""Side by side: one LoRA training step (forward, causal LM loss, backward, AdamW) of peftc's loop
(benches/train.rs) and of PyTorch on the same llama-shaped stack, and the ratio peftc / PyTorch.

The model is the one in benches/train.rs, line for line: embeddings -> 8 x [RMSNorm, q/k/v/o
(LoRA r 16, alpha 32 on q,v or on every linear), causal softmax attention without RoPE, RMSNorm,
SwiGLU MLP 512 -> 1376 -> 512] -> RMSNorm -> untied head 8000; fp32; frozen base.
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


class Linear(torch.nn.Module):
    def __init__(self, out, inp, adapt):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(out, inp) * 0.02, requires_grad=False)
        self.adapt = adapt
        if adapt:
            self.a = torch.nn.Parameter(torch.randn(RANK, inp) * 0.02)
            self.b = torch.nn.Parameter(torch.zeros(out, RANK))

    def forward(self, x):
        y = x @ self.w.T
        if self.adapt:
            y = y + ((x @ self.a.T) @ self.b.T) * (ALPHA / RANK)
        return y


def rms(x, g):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * g


class Model(torch.nn.Module):
    def __init__(self, all_linear):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN) * 0.02, requires_grad=False)
        self.head = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN) * 0.02, requires_grad=False)
        self.layers = torch.nn.ModuleList()
        for _ in range(LAYERS):
            m = torch.nn.Module()
            m.q = Linear(HIDDEN, HIDDEN, True)
            m.k = Linear(HIDDEN, HIDDEN, all_linear)
            m.v = Linear(HIDDEN, HIDDEN, True)
            m.o = Linear(HIDDEN, HIDDEN, all_linear)
            m.gate = Linear(MLP, HIDDEN, all_linear)
            m.up = Linear(MLP, HIDDEN, all_linear)
            m.down = Linear(HIDDEN, MLP, all_linear)
            self.layers.append(m)
        self.ones = torch.ones(HIDDEN)

    def forward(self, ids):
        b, s = ids.shape
        dh = HIDDEN // HEADS
        h = self.emb[ids]
        causal = torch.full((s, s), float("-inf")).triu(1)
        for l in self.layers:
            x = rms(h, self.ones)
            q = l.q(x).view(b, s, HEADS, dh).transpose(1, 2)
            k = l.k(x).view(b, s, HEADS, dh).transpose(1, 2)
            v = l.v(x).view(b, s, HEADS, dh).transpose(1, 2)
            p = torch.softmax(q @ k.transpose(-1, -2) / dh**0.5 + causal, dim=-1)
            o = (p @ v).transpose(1, 2).reshape(b, s, HIDDEN)
            h = h + l.o(o)
            x = rms(h, self.ones)
            h = h + l.down(torch.nn.functional.silu(l.gate(x)) * l.up(x))
        return rms(h, self.ones) @ self.head.T


def torch_case(case):
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    model = Model(case == "lora_all")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(WARMUP + STEPS):
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
        t0 = time.perf_counter()
        logits = model(ids)
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
