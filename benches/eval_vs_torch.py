"""Side by side: evaluation (forward and loss, no gradient graph) of a LoRA model through
`peftc run` and through transformers + PEFT + PyTorch (`torch.no_grad()`, `model.eval()`), on the
same model files, shapes and data as benches/train_vs_torch.py; tokens/s of each side and the
ratio.

Cases (`--cases`): the causal-LM and classification cases of train_vs_torch.py (`llama_all`,
`minilm_all`, `smollm2_all`), LoRA on every linear layer. peftc's pipeline trains the adapter
one step (so the eval stage has a trained model to evaluate) and evaluates it on examples of the
case's length in batches of the case's batch size, metric `loss`; its time is
the eval stage's `eval` span (the stage log's close event: forward, loss and collation of every
batch, nothing else). PyTorch's side evaluates a freshly wrapped PEFT model (the same adapter
shapes; its values do not change the work) on `--batches` batches of the same shape, timed
around the loop after one untimed batch. peftc evaluates the eval half of the data file (32
batches); the rates (tokens/s) are compared. Interleaved rounds in fresh processes, as train_vs_torch.py.

    PEFTC_BIN=$PWD/target/release/peftc python benches/eval_vs_torch.py --cases llama_all --rounds 3

Python side: benches/requirements-train.txt.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_vs_torch as tvt  # noqa: E402  (shared inputs and process helpers)


def torch_eval(case, inputs, batches, threads):
    """Evaluates in this process; prints one JSON line."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = tvt.CASES[case]
    model = tvt.peft_model(case, inputs)
    model.eval()
    batch, seq = spec["batch"], spec["seq"]
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(batches):
        if spec["model"] == "minilm":
            ids = torch.randint(1000, model.config.vocab_size, (batch, seq), generator=g)
            labels = torch.randint(0, 2, (batch,), generator=g)
        else:
            ids = torch.randint(1, model.config.vocab_size, (batch, seq), generator=g)
            labels = ids
        data.append((ids, labels))
    with torch.no_grad():
        model(input_ids=data[0][0], attention_mask=torch.ones_like(data[0][0]),
              labels=data[0][1])  # warm-up, not timed
        t0 = time.perf_counter()
        for ids, labels in data:
            model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.item()
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "tokens": batches * batch * seq}))


def pipeline_text(case, inputs):
    """train_vs_torch's pipeline (one step) plus an eval stage over half the data file."""
    spec = tvt.CASES[case]
    text = tvt.pipeline_text(case, inputs, 1)
    text = text.replace("split = { train = 95%, eval = 5%, seed = 1 }",
                        "split = { train = 50%, eval = 50%, seed = 1 }")
    return text + f"""
eval e {{
  model   = t
  data    = d.eval
  metrics = [loss]
  batch   = {spec["batch"]}
}}
"""


def eval_seconds(workdir):
    """The eval stage's `eval` span time, from its stage log."""
    units = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for root, _, files in os.walk(workdir):
        for name in files:
            if not (name.startswith("eval.") and name.endswith(".log")):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as f:
                for line in f:
                    if "eval{" in line and "close time.busy=" in line and "baseline" not in line:
                        value = line.split("close time.busy=", 1)[1].split()[0]
                        num = value.rstrip("nµums")
                        return float(num) * units[value[len(num):]]
    sys.exit(f"no eval span in the stage logs under {workdir}")


def peftc_eval(case, inputs, threads, workdir, binary):
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "bench.peft")
    with open(path, "w", encoding="utf-8") as f:
        f.write(pipeline_text(case, inputs))
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), PEFTC_LOG="warn,peftc=debug")
    tvt.run_child([binary, "run", path], env, cwd=workdir)
    return eval_seconds(workdir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="llama_all,minilm_all")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, default=8, help="eval batches per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--side")
    ap.add_argument("--case")
    ap.add_argument("--inputs")
    args = ap.parse_args()
    if args.side == "torch":
        torch_eval(args.case, json.loads(args.inputs), args.batches, args.threads)
        return
    binary = os.environ.get("PEFTC_BIN", os.path.join(tvt.REPO, "target", "release", "peftc"))
    binary = os.path.abspath(binary)
    if not os.path.isfile(binary):
        sys.exit(f"no peftc binary at {binary}: `cargo build --release` or set PEFTC_BIN")
    assets = os.environ.get("PEFTC_TEST_ASSETS", os.path.join(tvt.REPO, "target", "assets"))
    root = tempfile.mkdtemp(prefix="peftc-eval-bench-")
    import torch, transformers, peft  # noqa: E401
    print(f"# eval_vs_torch: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, {args.threads} threads per side; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, peft {peft.__version__}; peftc {binary}")
    print(f"# {args.rounds} interleaved rounds x {args.batches} eval batches; {tvt.uptime()} before")
    rows = []
    for case in args.cases.split(","):
        spec = tvt.CASES[case]
        inputs = tvt.prepare(case, root, assets)
        if inputs is None:
            print(f"# {case}: skipped, its model is not in {assets}")
            continue
        tokens = args.batches * spec["batch"] * spec["seq"]
        with open(inputs["data"], encoding="utf-8") as f:
            eval_rows = len(f.readlines()) // 2
        p_rates, t_rates = [], []
        for k in range(args.rounds):
            order = ["torch", "peftc"] if k % 2 == 0 else ["peftc", "torch"]
            for side in order:
                if side == "torch":
                    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
                    cmd = [sys.executable, os.path.abspath(__file__), "--side", "torch", "--case",
                           case, "--inputs", json.dumps(inputs), "--batches", str(args.batches),
                           "--threads", str(args.threads)]
                    out, _ = tvt.run_child(cmd, env)
                    t_rates.append(tokens / json.loads(out.strip().splitlines()[-1])["seconds"])
                else:
                    work = os.path.join(root, f"{case}-eval{k}")
                    seconds = peftc_eval(case, inputs, args.threads, work, binary)
                    p_rates.append(eval_rows * spec["seq"] / seconds)
            print(f"# {case} round {k + 1}: peftc {p_rates[-1]:,.0f} tokens/s, torch "
                  f"{t_rates[-1]:,.0f} tokens/s; {tvt.uptime()}", flush=True)
        p, t = statistics.median(p_rates), statistics.median(t_rates)
        rows.append((case, spec, p, t))
    print(f"# {tvt.uptime()} after")
    print("| case | batch x seq | peftc eval tokens/s | torch eval tokens/s | peftc / torch tokens/s (above 1: peftc faster) |")
    print("|---|---|---:|---:|---:|")
    for case, spec, p, t in rows:
        print(f"| {case} | {spec['batch']}x{spec['seq']} | {p:,.0f} | {t:,.0f} | {p / t:.2f}x |")


if __name__ == "__main__":
    main()
