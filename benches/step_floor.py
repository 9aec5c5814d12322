"""The matrix-product floor of a LoRA training step on this CPU: the step's GEMM work divided by
the rate PyTorch's GEMM reaches on the same shapes with the same threads.

For the f32 cases of benches/train_vs_torch.py (tiny llama and SmolLM2-135M, LoRA on every
linear layer), counts the floating-point operations a LoRA step cannot avoid: every linear
layer's forward product and its input-gradient product (the frozen weights get no gradient;
the first layer's q/k/v input needs none either), the LM head both ways, the LoRA products
(forward, dA, dB, and their share of dx), attention's four products forward and backward. Then
times `torch.matmul` on each distinct linear shape (best of several runs, the bench's thread
count) and prints the floor: the time a step would take if it did nothing but these products at
PyTorch's measured rate. A step that runs at some fraction of PyTorch's step time must beat
that fraction of PyTorch's whole step with its products alone; the output says what fraction of
the floor PyTorch's measured step is when `--torch-step CASE=SECONDS` gives it.

    python benches/step_floor.py [--threads 2] [--torch-step llama_all=0.93 ...]

Standard output only; needs torch (benches/requirements-train.txt).
"""

import argparse
import time

CASES = {
    # hidden, layers, heads, kv heads, intermediate, vocab, batch, seq, r
    "llama_all": dict(h=512, layers=8, heads=8, kv=8, i=1376, vocab=8000, batch=8, seq=128, r=16),
    "smollm2_all": dict(h=576, layers=30, heads=9, kv=3, i=1536, vocab=49152, batch=4, seq=256,
                        r=16),
}


def linear_shapes(c):
    """(in, out, count) of every linear layer of the model, LM head included."""
    hd = c["h"] // c["heads"]
    kvw = c["kv"] * hd
    per_layer = [(c["h"], c["h"]), (c["h"], kvw), (c["h"], kvw), (c["h"], c["h"]),
                 (c["h"], c["i"]), (c["h"], c["i"]), (c["i"], c["h"])]
    shapes = {}
    for layer in range(c["layers"]):
        for k, (i, o) in enumerate(per_layer):
            # Layer 0's q, k, v: their input (the embedding's norm) needs no gradient.
            needs_dx = not (layer == 0 and k < 3)
            key = (i, o, needs_dx)
            shapes[key] = shapes.get(key, 0) + 1
    shapes[(c["h"], c["vocab"], True)] = 1
    return shapes


def gemm_rate(torch, m, k, n, reps):
    """Best GFLOP/s of `[m, k] @ [k, n]` over `reps` timed runs (after warm-up)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * m * k * n / best / 1e9


def floor(torch, name, c, reps):
    t = c["batch"] * c["seq"]
    seconds, flops = 0.0, 0.0
    for (i, o, needs_dx), count in linear_shapes(c).items():
        fwd = 2.0 * t * i * o
        seconds += count * fwd / (gemm_rate(torch, t, i, o, reps) * 1e9)
        flops += count * fwd
        if needs_dx:
            seconds += count * fwd / (gemm_rate(torch, t, o, i, reps) * 1e9)
            flops += count * fwd
        if o != c["vocab"]:
            # LoRA: x A^T, (.) B^T forward; dB, dA, and the two products of dx.
            lora = count * 2.0 * t * c["r"] * (i + o) * 3
            seconds += lora / (gemm_rate(torch, t, i, c["r"], reps) * 1e9)
            flops += lora
    hd = c["h"] // c["heads"]
    attn = c["layers"] * 12.0 * c["batch"] * c["heads"] * c["seq"] ** 2 * hd
    rate = gemm_rate(torch, c["seq"], hd, c["seq"], reps)
    seconds += attn / (rate * 1e9)
    flops += attn
    return flops, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--torch-step", action="append", default=[],
                    help="CASE=SECONDS, PyTorch's measured step (benches/train_vs_torch.py)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    measured = dict(s.split("=", 1) for s in args.torch_step)
    print(f"# step_floor: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch "
          f"{torch.__version__}, {args.threads} threads, best of {args.reps} per shape")
    rate = gemm_rate(torch, 2048, 2048, 2048, args.reps)
    print(f"# torch.matmul 2048^3: {rate:.0f} GFLOP/s")
    for name, c in CASES.items():
        flops, seconds = floor(torch, name, c, args.reps)
        line = (f"{name}: {flops / 1e9:.1f} GFLOP per step; floor at torch's GEMM rate "
                f"{seconds:.3f} s ({flops / 1e9 / seconds:.0f} GFLOP/s)")
        if name in measured:
            step = float(measured[name])
            line += (f"; torch's measured step {step:.3f} s = {seconds / step:.2f} of it products;"
                     f" 0.8x of that step ({0.8 * step:.3f} s) is {0.8 * step / seconds:.2f}x the"
                     f" floor")
        print(line, flush=True)


if __name__ == "__main__":
    main()
