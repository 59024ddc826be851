"""Evaluates the thinking model (models/frugal-think.md) through frugal's own
engine: for each world of the test split (or the validation split, where
thresholds such as early exit's are chosen; never on test), the documents are
given to `frugal ask --docs ... -i --json` (greedy), and its questions are
answered in each mode; exact match after SQuAD's normalisation, per kind.

    python3 tools/eval_thinking_model.py [--model models/frugal-think-q8_0.gguf] [--worlds 20]
        [--split test|validation] [--modes off on budget:64 exit:0.9 ...] [--json out.json] [--markdown out.md]

Modes: `on` (thinking, no limit), `off` (the empty think block), `budget:N`
(--reasoning-budget N), `exit:T` (--reasoning-exit confidence:T), `raw`
(thinking, and the answer parsed here from the text after `</think>`; for
frugal builds without thinking control). Standard library only.
"""
import argparse
import json
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo"))
from thinking import make_thinking_example, pick_questions  # noqa: E402
from world import Pools  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
KINDS = ("single", "two-hop", "unanswerable", "counting", "summing")


def normalize(text):
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def mode_flags(mode):
    if mode == "on":
        return ["--thinking", "on"]
    if mode == "off":
        return ["--thinking", "off"]
    if mode == "raw":
        return []
    if mode.startswith("budget:"):
        return ["--reasoning-budget", mode.split(":", 1)[1]]
    if mode.startswith("exit:"):
        return ["--thinking", "on", "--reasoning-exit", "confidence:" + mode.split(":", 1)[1]]
    raise SystemExit(f"unknown mode {mode!r}: on, off, raw, budget:N, exit:T")


def parse_raw(record):
    """Answer and thinking from the generated text (for `raw`)."""
    text = record.get("answer", "")
    thinking = record.get("thinking", "")
    if "</think>" in text:
        thinking, text = text.split("</think>", 1)
        thinking = thinking.replace("<think>", "")
    return text.strip(), thinking.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frugal", default=os.path.join(ROOT, "build", "frugal"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "frugal-think-q8_0.gguf"))
    ap.add_argument("--split", default="test", choices=("test", "validation"))
    ap.add_argument("--worlds", type=int, default=20)
    ap.add_argument("--per-kind", type=int, default=3, help="questions per kind and world")
    ap.add_argument("--kinds", nargs="*", default=["two-hop", "counting", "summing"],
                    help=f"question kinds, of {' '.join(KINDS)}")
    ap.add_argument("--min-docs", type=int, default=5)
    ap.add_argument("--max-docs", type=int, default=15)
    ap.add_argument("--modes", nargs="*", default=["off", "on"])
    ap.add_argument("--seed", default=None, help="world seed (default: thinking-<split>)")
    ap.add_argument("--threads", default="2")
    ap.add_argument("-n", "--n-predict", default="600")
    ap.add_argument("--json", help="write the summary and per-question results here")
    ap.add_argument("--markdown", help="write the summary table here")
    args = ap.parse_args()
    rng = random.Random(args.seed or f"thinking-{args.split}")
    pools = Pools(args.split)
    worlds = []
    for _ in range(args.worlds):
        ex = make_thinking_example(rng, pools, rng.randint(args.min_docs, args.max_docs))
        worlds.append((ex, pick_questions(rng, ex["questions"], args.per_kind, args.kinds)))
    results = []
    with tempfile.TemporaryDirectory() as work:
        for mode in args.modes:
            flags = mode_flags(mode)
            for w, (ex, questions) in enumerate(worlds):
                docs = os.path.join(work, "docs.jsonl")
                with open(docs, "w") as f:
                    for d in ex["documents"]:
                        f.write(json.dumps({"id": d["id"], "title": d["title"], "text": d["text"]}) + "\n")
                start = time.time()
                out = subprocess.run([args.frugal, "ask", "-m", args.model, "-t", args.threads, "--docs", docs, "-i",
                                      "--json", "--temp", "0", "-n", args.n_predict, "-q"] + flags,
                                     input="".join(q["question"] + "\n" for q in questions), check=True,
                                     capture_output=True, text=True).stdout
                seconds = (time.time() - start) / max(len(questions), 1)
                lines = out.splitlines()
                assert len(lines) == len(questions), (len(lines), len(questions))
                for q, line in zip(questions, lines):
                    r = json.loads(line)
                    if mode == "raw":
                        answer, thinking = parse_raw(r)
                        thinking_tokens = r.get("tokens", 0)
                    else:
                        answer, thinking = r["answer"].strip(), r.get("thinking", "")
                        thinking_tokens = r.get("thinking_tokens", 0)
                    results.append({"mode": mode, "world": w, "documents": len(ex["documents"]), "kind": q["kind"],
                                    "question": q["question"], "expected": q["answer"], "answer": answer,
                                    "exact": normalize(answer) == normalize(q["answer"]),
                                    "thinking_tokens": thinking_tokens, "probe_tokens": r.get("probe_tokens", 0),
                                    "early_exit": r.get("early_exit", False), "tokens": r.get("tokens", 0),
                                    "prompt_tokens": r.get("prompt_tokens", 0), "seconds": round(seconds, 4),
                                    "thinking": thinking})
            print(f"mode {mode}: done", file=sys.stderr)
    summary = {}
    for mode in args.modes:
        rows = [r for r in results if r["mode"] == mode]
        s = {}
        for kind in args.kinds + ["all"]:
            kr = [r for r in rows if kind in ("all", r["kind"])]
            s[kind] = round(sum(r["exact"] for r in kr) / max(len(kr), 1), 4)
        s["questions"] = len(rows)
        s["thinking_tokens"] = round(sum(r["thinking_tokens"] for r in rows) / max(len(rows), 1), 1)
        s["probe_tokens"] = round(sum(r["probe_tokens"] for r in rows) / max(len(rows), 1), 1)
        s["early_exits"] = sum(r["early_exit"] for r in rows)
        s["seconds"] = round(sum(r["seconds"] for r in rows) / max(len(rows), 1), 3)
        summary[mode] = s
    head = "| mode | " + " | ".join(args.kinds) + " | all | thinking tokens | probe tokens | early exits | s/question |"
    table = [head, "|" + "---|" * (len(args.kinds) + 6)]
    for mode, s in summary.items():
        table.append(f"| {mode} | " + " | ".join(f"{s[k]:.2f}" for k in args.kinds) +
                     f" | {s['all']:.2f} | {s['thinking_tokens']} | {s['probe_tokens']} | {s['early_exits']} | "
                     f"{s['seconds']} |")
    table = "\n".join(table)
    info = (f"{args.worlds} {args.split} worlds ({args.min_docs}-{args.max_docs} documents), {args.per_kind} questions "
            f"per kind and world, greedy, {os.path.basename(args.model)}")
    print(info)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(info + "\n\n" + table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "summary": summary, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
