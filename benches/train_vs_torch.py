"""Side by side: LoRA training through `peftc run` (the release binary, a real pipeline file)
and through transformers + PEFT + PyTorch, on the same model files, shapes and data; step time,
tokens/s and peak RSS of each side and the ratios peftc / PyTorch.

Cases (`--cases`, comma separated):
  llama_qv, llama_all  a tiny llama written once as a Hugging Face folder with random weights
                       (hidden 512, 8 layers, 8 heads, MLP 1376, vocab 8000, untied head) and a
                       word-level tokenizer.json; causal LM, LoRA r 16 alpha 32 on q,v / on
                       every linear layer; batch 8 x 128.
  llama_nf4            llama_all over an NF4 base (QLoRA: blocks of 64, double quantization,
                       f32 compute): peftc's `quant q = nf4 { double_quant = true }` against
                       transformers' BitsAndBytesConfig(load_in_4bit, nf4, double quant, f32
                       compute) on bitsandbytes' CPU backend (no prepare_model_for_kbit_training:
                       it would add gradient checkpointing).
  minilm_all           all-MiniLM-L6-v2 from the test assets (scripts/fetch-assets.sh) with a
                       2-label classification head; LoRA r 8 alpha 16 on every linear layer;
                       batch 16 x 64 (the sentiment example's shape).
  smollm2_all          SmolLM2-135M-Instruct from the assets' Q4_1 GGUF, dequantized to f32 on
                       both sides (`weights = dense`; transformers' `gguf_file=`); causal LM, LoRA
                       r 16 alpha 32 on every linear layer; batch 4 x 256.
Every example is exactly `seq` tokens long on both sides (texts of whole vocabulary words; for
SmolLM2 long texts truncated by `max_len`), so both sides train on batches of the same shape.
Both sides: AdamW (weight decay 0), constant lr 1e-4, no dropout, no clipping, f32, the same
thread count (`--threads`, default 2).

Method: for each case, `--rounds` interleaved rounds; in each round a fresh PyTorch process and
a fresh `peftc run` process (order alternating between rounds) each train `--steps` steps. Step
time is the median over the steps after `--warmup`: PyTorch's measured around forward + loss +
backward + optimizer step; peftc's read from the run's `metrics.jsonl` (`step_s`, which the
trainer measures the same way), not the process's wall time. Peak RSS is the child process's
`ru_maxrss`. The PyTorch import floor (a process that imports torch, transformers and peft and
does nothing else) is printed too. Reported: the median over rounds of each side and the median
of the per-round ratios. `uptime`'s load is printed before and after: other load on the machine
distorts both sides, ratios less than absolute times.

`--neighbour` runs a CPU-bound process (a Python busy loop pinned to the last core) beside each
side's run, started before it and killed after it: the step time under contention, the same for
both sides.

`--profile` runs one extra peftc round of the case under `perf record` and prints where the
time goes (matmul / elementwise / allocation / optimizer / other), when perf works here.

    PEFTC_BIN=target/release/peftc PEFTC_TEST_ASSETS=target/assets \
        python benches/train_vs_torch.py --cases llama_qv,llama_all,minilm_all --rounds 5
    python benches/train_vs_torch.py --smoke       # CI: tiny llama, 1 round, 3 steps

Python side: benches/requirements-train.txt.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR = 1e-4

CASES = {
    "llama_qv": dict(model="llama", batch=8, seq=128, r=16, alpha=32, targets="qv"),
    "llama_all": dict(model="llama", batch=8, seq=128, r=16, alpha=32, targets="all"),
    "llama_nf4": dict(model="llama", batch=8, seq=128, r=16, alpha=32, targets="all", quant="nf4"),
    "minilm_all": dict(model="minilm", batch=16, seq=64, r=8, alpha=16, targets="all"),
    "smollm2_all": dict(model="smollm2", batch=4, seq=256, r=16, alpha=32, targets="all"),
}

LLAMA = dict(hidden=512, layers=8, heads=8, mlp=1376, vocab=8000)


# ---------------------------------------------------------------- shared inputs

def write_tiny_llama(folder):
    """The tiny llama folder: config.json, model.safetensors (random, seed 0), tokenizer.json
    (word level: `w0` .. `w7999`, whitespace split, no special tokens added)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM

    if os.path.isfile(os.path.join(folder, "tokenizer.json")):
        return
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=LLAMA["hidden"], intermediate_size=LLAMA["mlp"],
        num_hidden_layers=LLAMA["layers"], num_attention_heads=LLAMA["heads"],
        num_key_value_heads=LLAMA["heads"], vocab_size=LLAMA["vocab"],
        max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=None, pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    vocab = {f"w{i}": i for i in range(LLAMA["vocab"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(os.path.join(folder, "tokenizer.json"))


def minilm_words(folder):
    """Whole lowercase words of MiniLM's WordPiece vocabulary (each is one token)."""
    with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
        return [w.strip() for w in f if w.strip().isalpha() and w.strip().islower()][2000:6000]


def write_data(path, case, assets, n):
    """`n` examples of exactly the case's sequence length (JSONL `text`, `label`)."""
    spec = CASES[case]
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if spec["model"] == "llama":
                words = [f"w{rng.randrange(1, LLAMA['vocab'])}" for _ in range(spec["seq"])]
            elif spec["model"] == "minilm":
                vocab = minilm_words(os.path.join(assets, "all-MiniLM-L6-v2"))
                words = [rng.choice(vocab) for _ in range(spec["seq"] - 2)]  # + [CLS] [SEP]
            else:  # long enough to be truncated to max_len by any subword tokenizer
                words = [rng.choice(["alpha", "river", "stone", "light", "green", "table"])
                         for _ in range(spec["seq"] * 2)]
            f.write(json.dumps({"text": " ".join(words), "label": ["negative", "positive"][i % 2]}) + "\n")


# ---------------------------------------------------------------- the PyTorch side

def peft_model(case, inputs):
    """The case's transformers model (eager attention, f32) wrapped by PEFT with its LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model

    spec = CASES[case]
    if spec["model"] == "llama":
        from transformers import AutoModelForCausalLM
        extra = {}
        if spec.get("quant") == "nf4":
            from transformers import BitsAndBytesConfig
            extra = dict(device_map="cpu", quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.float32))
        model = AutoModelForCausalLM.from_pretrained(inputs["model"], attn_implementation="eager",
                                                     dtype=torch.float32, **extra)
        task = "CAUSAL_LM"
    elif spec["model"] == "smollm2":
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(inputs["model"]), gguf_file=os.path.basename(inputs["model"]),
            attn_implementation="eager", dtype=torch.float32)
        task = "CAUSAL_LM"
    else:
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained(
            inputs["model"], num_labels=2, attn_implementation="eager", dtype=torch.float32)
        task = "SEQ_CLS"
    targets = "all-linear" if spec["targets"] == "all" else ["q_proj", "v_proj"]
    return get_peft_model(model, LoraConfig(r=spec["r"], lora_alpha=spec["alpha"],
                                            lora_dropout=0.0, target_modules=targets,
                                            task_type=task))


def torch_side(case, inputs, steps, threads):
    """Trains in this process; prints one JSON line."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = CASES[case]
    model = peft_model(case, inputs)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    batch, seq = spec["batch"], spec["seq"]
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        if spec["model"] == "minilm":
            ids = torch.randint(1000, vocab, (batch, seq), generator=g)
            labels = torch.randint(0, 2, (batch,), generator=g)
        else:
            ids = torch.randint(1, vocab, (batch, seq), generator=g)
            labels = ids
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"trainable": sum(p.numel() for p in params), "step_s": times,
                      "tokens": batch * seq}))


# ---------------------------------------------------------------- the peftc side

def pipeline_text(case, inputs, steps):
    spec = CASES[case]
    if spec["model"] == "llama":
        model = f'model m = local("{inputs["model"]}")'
    elif spec["model"] == "smollm2":
        model = f'model m = gguf("{inputs["model"]}") {{ weights = dense }}'
    else:
        model = f'model m = local("{inputs["model"]}") {{\n  task = classify(labels = ["negative", "positive"])\n}}'
    label = '\n  label = field("label")' if spec["model"] == "minilm" else ""
    quantized = ""
    if spec.get("quant") == "nf4":
        model = "quant q = nf4 { double_quant = true }\n" + model
        quantized = " quantized q"
    targets = "all_linear" if spec["targets"] == "all" else "[q_proj, v_proj]"
    return f"""{model}

dataset d = jsonl("{inputs["data"]}") {{
  text = field("text"){label}
  max_len = {spec["seq"]}
  split = {{ train = 95%, eval = 5%, seed = 1 }}
}}

adapter a = lora {{
  r = {spec["r"]}
  alpha = {spec["alpha"]}
  dropout = 0.0
  targets = {targets}
}}

train t {{
  model = m{quantized}
  adapters = [a]
  data = d.train
  max_steps = {steps}
  batch = {spec["batch"]}
  lr = {LR}
  schedule = constant
  optimizer = adamw {{ weight_decay = 0.0 }}
  seed = 1
}}
"""


def run_child(cmd, env, cwd=None):
    """Runs `cmd`; returns its (stdout, stderr). Exits on failure."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-4000:]}")
    return out, err


def peak_rss_wrapper(cmd):
    """`cmd` run under this script's `--rss` mode, which starts the command, waits for it with
    `wait4` and prints that one process's `ru_maxrss` on stderr."""
    return [sys.executable, os.path.abspath(__file__), "--rss", "--"] + cmd


def rss_mode(cmd):
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"peak_rss_mib": usage.ru_maxrss / 1024.0}), file=sys.stderr)
    sys.exit(code)


def parse_rss(err):
    for line in reversed(err.splitlines()):
        if line.startswith('{"peak_rss_mib"'):
            return json.loads(line)["peak_rss_mib"]
    return float("nan")


def peftc_side(case, inputs, steps, threads, workdir, binary, perf=None):
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "bench.peft")
    with open(path, "w", encoding="utf-8") as f:
        f.write(pipeline_text(case, inputs, steps))
    # `peftc=debug` makes the train stage's log carry each step's phase times (span closes).
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), PEFTC_LOG="warn,peftc=debug")
    cmd = [binary, "run", path]
    if perf:
        cmd = perf + ["--"] + cmd
    _, err = run_child(peak_rss_wrapper(cmd), env, cwd=workdir)
    logs = []
    for root, _, files in os.walk(workdir):
        if "metrics.jsonl" in files:
            logs.append(os.path.join(root, "metrics.jsonl"))
    if not logs:
        sys.exit(f"peftc run wrote no metrics.jsonl under {workdir}")
    with open(logs[0], encoding="utf-8") as f:
        records = [json.loads(l) for l in f if l.strip()]
    trainable = None
    for root, _, files in os.walk(workdir):
        for name in files:
            if name.endswith(".json") and trainable is None:
                try:
                    with open(os.path.join(root, name), encoding="utf-8") as f:
                        doc = json.load(f)
                except (OSError, ValueError):
                    continue
                if isinstance(doc, dict):
                    trainable = find_key(doc, "trainable_params")
    return {"step_s": [r["step_s"] for r in records], "tokens": records[-1]["tokens"],
            "trainable": trainable, "peak_rss_mib": parse_rss(err),
            "phases": phase_times(workdir)}


PHASES = ("collate", "forward", "backward", "optimizer")


def phase_times(workdir):
    """Per-step seconds of the trainer's spans, from the train stage's log: `{phase: [s, ..]}`."""
    units = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    out = {p: [] for p in PHASES}
    for root, _, files in os.walk(workdir):
        for name in files:
            if not (name.startswith("train.") and name.endswith(".log")):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as f:
                for line in f:
                    for p in PHASES:
                        tag = f":{p}: close time.busy="
                        if tag in line:
                            value = line.split(tag, 1)[1].split()[0]
                            num = value.rstrip("nµums")
                            out[p].append(float(num) * units[value[len(num):]])
    return out


def find_key(doc, key):
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for v in doc.values():
            found = find_key(v, key)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------- profile

CATEGORIES = [  # first match wins; matched against "dso symbol"
    # candle's CPU barrier pool: the calling thread spins in `BarrierGuard::drop` until every
    # worker finished; idle workers spin in their thread main loop before parking.
    ("thread pool waiting (candle barrier pool / rayon / spin)",
     ("barrierguard", "__rust_begin_short_backtrace", "rayon", "crossbeam", "sched_yield",
      "futex", "spin", "std::thread", "finish_task_switch")),
    ("matmul (gemm)", ("gemm", "matmul", "sgemm", "dot")),
    ("optimizer (AdamW)", ("optim", "adamw")),
    ("allocation, copies, page zeroing", ("malloc", "free", "memcpy", "memset", "memmove",
                                          "realloc", "alloc::", "mmap", "munmap", "clear_page",
                                          "page_fault", "copy_strided", "copy2d", "to_vec")),
    ("elementwise, reductions, fused ops", ("cpu_backend", "binary_map", "unary_map", "reduce",
                                            "softmax", "rms_norm", "layer_norm", "rope", "silu",
                                            "exp", "runtime::ops", "index_select", "where", "affine",
                                            "log", "sqrt", "powf", "tanh")),
]


def profile_breakdown(perf_data):
    """Share of CPU samples per category from `perf report` (user-space symbols)."""
    out = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                          "--sort", "dso,symbol", "-q"], capture_output=True, text=True).stdout
    shares = {name: 0.0 for name, _ in CATEGORIES}
    shares["other"] = 0.0
    top = []
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) != 2 or not parts[0].endswith("%"):
            continue
        pct = float(parts[0].rstrip("%"))
        what = parts[1].lower()
        for name, keys in CATEGORIES:
            if any(k in what for k in keys):
                shares[name] += pct
                break
        else:
            shares["other"] += pct
        if len(top) < 12:
            top.append((pct, " ".join(parts[1].split())[:110]))
    return shares, top


def perf_works():
    try:
        return subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", os.devnull, "--", "true"],
                              capture_output=True).returncode == 0
    except OSError:
        return False


# ---------------------------------------------------------------- driver

class Neighbour:
    """A CPU-bound process pinned to the last core while the block runs (`--neighbour`)."""

    def __init__(self, on):
        self.on = on
        self.proc = None

    def __enter__(self):
        if self.on:
            core = os.cpu_count() - 1
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "while True: pass"],
                preexec_fn=lambda: os.sched_setaffinity(0, {core}))
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        return False


def uptime():
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return "load average " + " ".join(f.read().split()[:3])
    except OSError:
        return "load average unknown"


def torch_round(case, inputs, steps, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--side", "torch", "--case", case,
           "--inputs", json.dumps(inputs), "--steps", str(steps), "--threads", str(threads)]
    out, err = run_child(peak_rss_wrapper(cmd), env)
    doc = json.loads(out.strip().splitlines()[-1])
    doc["peak_rss_mib"] = parse_rss(err)
    return doc


def torch_floor(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-c", "import torch, transformers, peft"]
    _, err = run_child(peak_rss_wrapper(cmd), env)
    return parse_rss(err)


def median_after(xs, warmup):
    tail = xs[warmup:] or xs
    return statistics.median(tail)


def prepare(case, root, assets):
    spec = CASES[case]
    if spec["model"] == "llama":
        model = os.path.join(root, "tiny-llama")
        write_tiny_llama(model)
    elif spec["model"] == "minilm":
        model = os.path.join(assets, "all-MiniLM-L6-v2")
    else:
        model = os.path.join(assets, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        return None
    data = os.path.join(root, f"{case}.jsonl")
    write_data(data, case, assets, 64 * spec["batch"])
    return {"model": os.path.abspath(model), "data": os.path.abspath(data)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="llama_qv,llama_all,llama_nf4,minilm_all,smollm2_all")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="llama_all, 1 round, 3 steps")
    ap.add_argument("--neighbour", action="store_true",
                    help="a CPU-bound busy loop on the last core beside each side's run")
    ap.add_argument("--profile", action="store_true",
                    help="after the rounds, one peftc run of each case under perf record")
    ap.add_argument("--workdir", help="keep inputs and runs here (default: a temporary folder)")
    ap.add_argument("--side")
    ap.add_argument("--case")
    ap.add_argument("--inputs")
    ap.add_argument("--rss", action="store_true")
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()
    if args.rss:
        rss_mode(args.rest)
    if args.side == "torch":
        torch_side(args.case, json.loads(args.inputs), args.steps, args.threads)
        return
    if args.smoke:
        args.cases, args.rounds, args.steps, args.warmup = "llama_all", 1, 3, 1
    binary = os.environ.get("PEFTC_BIN", os.path.join(REPO, "target", "release", "peftc"))
    if not os.path.isfile(binary):
        sys.exit(f"no peftc binary at {binary}: `cargo build --release` or set PEFTC_BIN")
    assets = os.environ.get("PEFTC_TEST_ASSETS", os.path.join(REPO, "target", "assets"))
    root = args.workdir or tempfile.mkdtemp(prefix="peftc-train-bench-")
    os.makedirs(root, exist_ok=True)
    import torch, transformers, peft  # noqa: E401  (versions for the header)
    print(f"# train_vs_torch: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, {args.threads} threads per side; torch {torch.__version__}, "
          f"transformers {transformers.__version__}, peft {peft.__version__}; peftc {binary}; "
          f"CANDLE_NUM_THREADS {os.environ.get('CANDLE_NUM_THREADS', 'unset (peftc sets 1)')}")
    print(f"# {args.rounds} interleaved rounds x {args.steps} steps, median of steps after "
          f"{args.warmup} warm-up; {uptime()} before"
          + ("; a busy-loop neighbour on the last core during every run" if args.neighbour else ""))
    floor = torch_floor(args.threads)
    print(f"# PyTorch import floor (torch + transformers + peft imported, nothing else): "
          f"{floor:.0f} MiB RSS")
    rows = []
    for case in args.cases.split(","):
        inputs = prepare(case, root, assets)
        if inputs is None:
            print(f"# {case}: skipped, its model is not in {assets} (scripts/fetch-assets.sh)")
            continue
        spec = CASES[case]
        t_steps, p_steps, ratios, t_rss, p_rss, tr = [], [], [], [], [], (None, None)
        phases = {}
        for k in range(args.rounds):
            order = ["torch", "peftc"] if k % 2 == 0 else ["peftc", "torch"]
            got = {}
            for side in order:
                with Neighbour(args.neighbour):
                    if side == "torch":
                        got[side] = torch_round(case, inputs, args.steps, args.threads)
                    else:
                        got[side] = peftc_side(case, inputs, args.steps, args.threads,
                                               os.path.join(root, f"{case}-run{k}"), binary)
                    shutil.rmtree(os.path.join(root, f"{case}-run{k}"), ignore_errors=True)
            t = median_after(got["torch"]["step_s"], args.warmup)
            p = median_after(got["peftc"]["step_s"], args.warmup)
            t_steps.append(t)
            p_steps.append(p)
            ratios.append(p / t)
            t_rss.append(got["torch"]["peak_rss_mib"])
            p_rss.append(got["peftc"]["peak_rss_mib"])
            tr = (got["peftc"]["trainable"], got["torch"]["trainable"])
            for ph, xs in got["peftc"]["phases"].items():
                if xs:
                    phases.setdefault(ph, []).append(median_after(xs, args.warmup) / p)
            if tr[0] != tr[1]:
                sys.exit(f"{case}: peftc trains {tr[0]} parameters, PEFT {tr[1]}: not the same run")
            print(f"# {case} round {k + 1}: peftc {p:.3f} s, torch {t:.3f} s, ratio {p / t:.2f}; "
                  f"RSS {p_rss[-1]:.0f} / {t_rss[-1]:.0f} MiB; {uptime()}", flush=True)
        tokens = spec["batch"] * spec["seq"]
        rows.append((case, spec, tr, statistics.median(p_steps), statistics.median(t_steps),
                     statistics.median(ratios), statistics.median(p_rss), statistics.median(t_rss),
                     tokens))
        if phases:
            shares = {ph: statistics.median(xs) for ph, xs in phases.items()}
            parts = ", ".join(f"{ph} {100 * x:.1f}%" for ph, x in shares.items())
            print(f"# {case} peftc step phases (trainer spans, share of the same round's step, "
                  f"median over rounds): {parts}; loss and the rest "
                  f"{100 * (1 - sum(shares.values())):.1f}%")
        if args.profile and perf_works():
            work = os.path.join(root, f"{case}-perf")
            data = os.path.join(root, f"{case}.perf.data")
            peftc_side(case, inputs, args.steps, args.threads, work, binary,
                       perf=["perf", "record", "-e", "cpu-clock", "-F", "499", "-o", data])
            shares, top = profile_breakdown(data)
            print(f"# {case} peftc profile (perf record -e cpu-clock, user space, whole process "
                  f"incl. load and tokenize; {args.steps} steps):")
            for name, pct in sorted(shares.items(), key=lambda kv: -kv[1]):
                print(f"#   {pct:5.1f}%  {name}")
            print("#   top symbols:")
            for pct, sym in top:
                print(f"#     {pct:5.1f}%  {sym}")
        elif args.profile:
            print("# --profile: `perf record` does not work here; no breakdown")
    print(f"# {uptime()} after")
    print("| case | batch x seq | trainable peftc / torch | peftc s/step | torch s/step | "
          "peftc / torch (median of rounds) | peftc tokens/s | torch tokens/s | "
          "peak RSS peftc / torch MiB | above torch's import floor: peftc / torch MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, spec, tr, p, t, ratio, prss, trss, tokens in rows:
        print(f"| {case} | {spec['batch']}x{spec['seq']} | {tr[0]} / {tr[1]} | {p:.3f} | {t:.3f} | "
              f"{ratio:.2f}x | {tokens / p:,.0f} | {tokens / t:,.0f} | {prss:,.0f} / {trss:,.0f} | "
              f"{prss:,.0f} / {trss - floor:,.0f} |")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
