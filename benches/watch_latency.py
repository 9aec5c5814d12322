#!/usr/bin/env python3
"""Latency of `peftc watch`: from a save (write to a temp file, rename into place) to
  1. the diagnostics printed (`[watch] check:` line), with `--no-run`;
  2. a re-run gate's verdict (`[watch] gate ...` line) on a cached pipeline (tiny BERT fixture,
     a gate threshold edit, so only the gate stage runs).

Usage: benches/watch_latency.py [PEFTC_BINARY] [--rounds N]
(default binary: $CARGO_TARGET_DIR or target/, debug/peftc). Prints median / p90 / max in ms.
"""
import json, os, queue, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
args = [a for a in sys.argv[1:]]
rounds = 20
if "--rounds" in args:
    i = args.index("--rounds"); rounds = int(args[i + 1]); del args[i:i + 2]
BIN = args[0] if args else os.path.join(TARGET, "debug", "peftc")
BERT = os.path.join(ROOT, "tests/fixtures/parity/bert/base")


def pipeline(gate, r=4):
    return f'''model bert = local("{BERT}") {{
  task = classify(labels = ["neg", "pos", "mid"])
}}
dataset rev = jsonl("d.jsonl") {{
  text = field("text")
  label = field("label")
  split = {{ train = 80%, eval = 20%, seed = 1 }}
}}
adapter s = lora {{ r = {r}, alpha = 8, targets = [query, value] }}
train tb {{
  model = bert
  adapters = [s]
  data = rev.train
  max_steps = 2
  batch = 4
}}
eval eb {{
  model = tb
  data = rev.eval
  metrics = [accuracy]
  gate accuracy >= {gate}%
}}
'''


def save(path, text):
    tmp = path + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class Watch:
    def __init__(self, file, extra):
        self.p = subprocess.Popen([BIN, "watch", file, *extra], cwd=os.path.dirname(file),
                                  stdout=subprocess.PIPE, text=True, bufsize=1,
                                  env={**os.environ, "NO_COLOR": "1"})
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put((time.perf_counter(), line.rstrip("\n")))

    def wait(self, prefix, since=0.0, timeout=60):
        """The first line starting with `prefix` read at or after `since` (perf_counter)."""
        end = time.time() + timeout
        while True:
            t, line = self.q.get(timeout=max(0.01, end - time.time()))
            if t >= since and line.startswith(prefix):
                return t, line

    def stop(self):
        self.p.terminate(); self.p.wait()


def stats(name, xs):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    print(f"{name}: n={len(xs)} median {statistics.median(xs):.1f} ms, p90 {p90:.1f} ms, max {xs[-1]:.1f} ms")


def main():
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "d.jsonl"), "w") as f:
        for i in range(40):
            l = ["neg", "pos", "mid"][i % 3]
            f.write(json.dumps({"text": f"this is sample {i} {l}", "label": l}) + "\n")
    file = os.path.join(d, "p.peft")

    save(file, pipeline(10))
    w = Watch(file, ["--no-run"])
    w.wait("[watch] check:")
    lat = []
    for i in range(rounds):
        time.sleep(0.15)
        t0 = time.perf_counter()
        save(file, pipeline(10, r=4 + (i % 2) * 4))
        t1, _ = w.wait("[watch] check:", t0)
        lat.append((t1 - t0) * 1000)
    w.stop()
    stats("save -> diagnostics (--no-run)", lat)

    save(file, pipeline(10))
    w = Watch(file, [])
    w.wait("[watch] run: ran:")
    lat = []
    for i in range(rounds):
        time.sleep(0.15)
        t0 = time.perf_counter()
        save(file, pipeline(11 + i))
        t1, _ = w.wait("[watch] gate ", t0)
        lat.append((t1 - t0) * 1000)
        w.wait("[watch] run: ran:", t0)
    w.stop()
    stats("save -> re-run gate verdict (cached pipeline)", lat)


main()
