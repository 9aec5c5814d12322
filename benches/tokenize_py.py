"""Python side of benches/tokenize.rs: the same JSONL, the same MiniLM tokenizer.

Usage: python benches/tokenize_py.py FILE.jsonl [TOKENIZER_DIR]

Two paths, each timed on its own and reported as examples/s and MB/s plus peak RSS:
- `tokenizers`: read line by line, json.loads, Tokenizer.encode_batch in chunks of 1024
  (what `prepare_to_file` does in Rust);
- `datasets.map`: load_dataset("json") then .map(batched=True) with the fast tokenizer, the
  usual Hugging Face path (skipped when `datasets` is not importable; set PYTHONPATH to a
  `pip install --target` folder to add it). Its Arrow cache is written to a temporary folder.
"""
import json
import os
import resource
import sys
import tempfile
import time

from tokenizers import Tokenizer


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    path = sys.argv[1]
    tok_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.environ.get("PEFTC_TEST_ASSETS", "target/assets"), "all-MiniLM-L6-v2")
    size = os.path.getsize(path)
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    labels = {"negative": 0, "positive": 1}
    mode = os.environ.get("PEFTC_BENCH_PY", "both")

    if mode in ("both", "tokenizers"):
        t, c = time.time(), cpu()
        n = tokens = 0
        texts, ys = [], []
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                texts.append(r["text"])
                ys.append(labels[r["label"]])
                if len(texts) == 1024:
                    for e in tok.encode_batch(texts):
                        tokens += len(e.ids)
                    n += len(texts)
                    texts, ys = [], []
        if texts:
            for e in tok.encode_batch(texts):
                tokens += len(e.ids)
            n += len(texts)
        s, c = time.time() - t, cpu() - c
        print(f"python tokenizers: {size/1e6:.0f} MB, {n} examples, {tokens} tokens in {s:.2f}s "
              f"({c:.1f} CPU s, {size/1e6/c:.2f} MB per CPU s): "
              f"{n/s:.0f} examples/s, {size/1e6/s:.2f} MB/s; peak RSS {peak_mib():.0f} MiB")

    if mode in ("both", "datasets"):
        try:
            import datasets
            from transformers import PreTrainedTokenizerFast
        except ImportError as e:
            print(f"python datasets.map: skipped ({e})")
            return
        datasets.disable_progress_bars()
        fast = PreTrainedTokenizerFast(tokenizer_object=tok)
        with tempfile.TemporaryDirectory() as cache:
            t, c = time.time(), cpu()
            ds = datasets.load_dataset("json", data_files=path, split="train", cache_dir=cache)
            ds = ds.map(lambda b: {**fast(b["text"]), "y": [labels[x] for x in b["label"]]},
                        batched=True, batch_size=1024, remove_columns=["text", "label"])
            n = len(ds)
            s, c = time.time() - t, cpu() - c
            print(f"python datasets.map: {size/1e6:.0f} MB, {n} examples in {s:.2f}s "
                  f"({c:.1f} CPU s in this process, {size/1e6/c:.2f} MB per CPU s): "
                  f"{n/s:.0f} examples/s, {size/1e6/s:.2f} MB/s; peak RSS {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
