"""`peftc run` LoRA step time with candle's own CPU pool at 1 thread (peftc's default, set in
src/main.rs) against N threads (candle's default: RAYON_NUM_THREADS), interleaved fresh
processes, on benches/train_vs_torch.py's tiny llama case (all linear, batch 8 x 128). Matrix
products use rayon's `--threads` threads in both arms. Prints each round and the medians, with
the machine's load: the pool's caller spins while its worker is descheduled, so the gap depends
on what else runs on the cores.

    PEFTC_BIN=target/release/peftc python benches/candle_threads.py --rounds 3 --steps 3
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_vs_torch as bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="llama_all")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    binary = os.environ.get("PEFTC_BIN", os.path.join(bench.REPO, "target", "release", "peftc"))
    assets = os.environ.get("PEFTC_TEST_ASSETS", os.path.join(bench.REPO, "target", "assets"))
    root = tempfile.mkdtemp(prefix="peftc-candle-threads-")
    inputs = bench.prepare(args.case, root, assets)
    arms = {"1": [], str(args.threads): []}
    print(f"# {args.case}, {args.rounds} rounds x {args.steps} steps, RAYON_NUM_THREADS "
          f"{args.threads}; {bench.uptime()} before")
    for k in range(args.rounds):
        order = list(arms) if k % 2 == 0 else list(reversed(arms))
        for n in order:
            os.environ["CANDLE_NUM_THREADS"] = n
            work = os.path.join(root, f"run{k}-{n}")
            got = bench.peftc_side(args.case, inputs, args.steps, args.threads, work, binary)
            shutil.rmtree(work, ignore_errors=True)
            arms[n].append(bench.median_after(got["step_s"], args.warmup))
            print(f"# round {k + 1}: CANDLE_NUM_THREADS {n}: {arms[n][-1]:.3f} s/step; "
                  f"{bench.uptime()}", flush=True)
    one, many = statistics.median(arms["1"]), statistics.median(arms[str(args.threads)])
    print(f"CANDLE_NUM_THREADS 1: {one:.3f} s/step, {args.threads}: {many:.3f} s/step, "
          f"ratio {one / many:.2f}; {bench.uptime()} after")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
