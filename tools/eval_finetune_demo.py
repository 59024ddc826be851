"""Exact match of a model (and LoRA adapters) on knowledge QA records, through
frugal's own engine: the records `frugal finetune` trains on (docs/finetune.md),
{"documents": [...], "question", "answer"} one a line, e.g. those of
tools/demo/finetune_data.py (examples/finetune/demo/).

    python3 tools/eval_finetune_demo.py examples/finetune/demo/held-out.jsonl
        [--model models/frugal-demo-qa-q8_0.gguf] [--lora adapter.gguf ...] [--threads 1]
        [--kinds FILE] [--json results.json] [--errors 20] [--require 0.8]

Records with the same documents share one `frugal ask --docs DOCS.jsonl -i
--json --temp 0` process (one knowledge cache, the questions on stdin). The
documents are written as JSONL with their id and title, as `frugal finetune`
reads them (id: the position from 1 where left out; title: the id where left
out), so the prompt is the one the records train: frugal's knowledge prompt
for this model. Exact match after SQuAD's normalisation (as
tools/eval_demo_model.py).

Where FILE.kinds.json lies next to FILE.jsonl (or --kinds names one: a JSON
list with one object per record), the accuracy is also given per value of each
of its keys (question kind, answerable, style, ...).

Standard library only.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_demo_model import normalize  # noqa: E402  (SQuAD's answer normalisation, shared)


def documents_of(record, where):
    """The documents as frugal finetune reads them: {"id", "title", "text"}."""
    out = []
    for i, item in enumerate(record.get("documents", [])):
        if isinstance(item, str):
            item = {"text": item}
        doc_id = str(item.get("id", i + 1))
        title = item.get("title") or doc_id
        text = item["text"]
        if text != text.strip():
            # frugal ask trims a JSONL document's text, frugal finetune does not: the prompts would differ.
            raise SystemExit(f"{where}: document {doc_id} has leading or trailing white space")
        out.append({"id": doc_id, "title": title, "text": text})
    if not out:
        raise SystemExit(f"{where}: a record without documents (frugal ask needs --docs)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="JSONL knowledge QA records")
    ap.add_argument("--frugal", default=os.path.join(ROOT, "build", "frugal"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "frugal-demo-qa-q8_0.gguf"))
    ap.add_argument("--lora", action="append", default=[], help="LoRA adapter (repeatable)")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--cache-type", default="f32")
    ap.add_argument("-n", "--n-predict", default="24")
    ap.add_argument("--kinds", help="per-record kinds (default: DATA's .kinds.json where it exists; none: no kinds)")
    ap.add_argument("--json", help="write the per-record results here")
    ap.add_argument("--errors", type=int, default=0, help="print this many wrong answers")
    ap.add_argument("--require", type=float, help="exit with status 1 below this overall exact match")
    args = ap.parse_args()

    records = []
    with open(args.data) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                records.append((n, json.loads(line)))
    kinds_path = args.kinds or re.sub(r"\.jsonl$", ".kinds.json", args.data)
    kinds = None
    if kinds_path != "none" and os.path.exists(kinds_path) and kinds_path != args.data:
        with open(kinds_path) as f:
            kinds = json.load(f)
        if len(kinds) != len(records):
            raise SystemExit(f"{kinds_path}: {len(kinds)} entries for {len(records)} records")

    # Records with the same documents, in the order of their first appearance.
    groups = defaultdict(list)
    for index, (n, record) in enumerate(records):
        docs = documents_of(record, f"{args.data}:{n}")
        if "\n" in record["question"]:
            raise SystemExit(f"{args.data}:{n}: a question with a line break")
        groups[json.dumps(docs)].append(index)

    command = [args.frugal, "ask", "-m", args.model, "-t", args.threads, "--temp", "0", "-n", args.n_predict,
               "--cache-type", args.cache_type, "-i", "--json", "-q"]
    for lora in args.lora:
        command += ["--lora", lora]
    answers = [None] * len(records)
    start = time.time()
    with tempfile.TemporaryDirectory() as work:
        docs_path = os.path.join(work, "docs.jsonl")
        for docs_json, indices in groups.items():
            with open(docs_path, "w") as f:
                for d in json.loads(docs_json):
                    f.write(json.dumps(d, ensure_ascii=False) + "\n")
            questions = "".join(records[i][1]["question"] + "\n" for i in indices)
            run = subprocess.run(command + ["--docs", docs_path], input=questions, capture_output=True, text=True)
            if run.returncode != 0:
                raise SystemExit(f"{args.data}:{records[indices[0]][0]}: frugal ask failed: {run.stderr.strip()}")
            out = run.stdout.splitlines()
            if len(out) != len(indices):
                raise SystemExit(f"frugal ask gave {len(out)} answers for {len(indices)} questions")
            for i, line in zip(indices, out):
                answers[i] = json.loads(line)["answer"].strip()
    seconds = time.time() - start

    results = []
    for i, (n, record) in enumerate(records):
        results.append({"line": n, "question": record["question"], "expected": record["answer"], "answer": answers[i],
                        "exact": normalize(answers[i]) == normalize(record["answer"]),
                        **({"kinds": kinds[i]} if kinds else {})})

    def accuracy(rows):
        return {"records": len(rows), "exact_match": round(sum(r["exact"] for r in rows) / max(len(rows), 1), 4)}

    summary = {"all": accuracy(results)}
    expected_unknown = [r for r in results if normalize(r["expected"]) == "unknown"]
    answerable = [r for r in results if normalize(r["expected"]) != "unknown"]
    summary["answered unknown where the documents have the answer"] = sum(
        normalize(r["answer"]) == "unknown" for r in answerable)
    summary["answered something where the answer is unknown"] = sum(
        normalize(r["answer"]) != "unknown" for r in expected_unknown)
    if kinds:
        for key in sorted({k for entry in kinds for k in entry if k != "documents"}):
            by_value = defaultdict(list)
            for r in results:
                by_value[str(r["kinds"].get(key))].append(r)
            summary[key] = {value: accuracy(rows) for value, rows in sorted(by_value.items())}
    summary["seconds"] = round(seconds, 1)
    summary["frugal ask processes"] = len(groups)
    print(json.dumps(summary, indent=1))
    wrong = [r for r in results if not r["exact"]]
    for r in wrong[:args.errors]:
        print(f"line {r['line']}: {r['question']}  expected {r['expected']!r}, got {r['answer']!r}"
              + (f"  {r['kinds']}" if kinds else ""), file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": args.data, "model": args.model, "lora": args.lora, "summary": summary,
                       "results": results}, f, indent=1)
    if args.require is not None and summary["all"]["exact_match"] < args.require:
        print(f"exact match {summary['all']['exact_match']} < {args.require}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
