"""Evaluates the demo QA model through frugal's own engine on the test split:
for each test world, `frugal kb build` over its documents, then `frugal ask`
(greedy) for its questions; exact match per question kind.

    python3 tools/eval_demo_model.py [--model models/frugal-demo-qa-q8_0.gguf] [--worlds 30]
        [--cache-type q8_0] [--require single=0.9 two-hop=0.6 unanswerable=0.8]

With --require it exits with status 1 when a kind's exact match is below its
minimum (ctest runs it so, as `demo_model_evaluation`).

Standard library only: it runs where frugal runs.
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
from collections import defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo"))
from world import Pools, make_example  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def normalize(text):
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frugal", default=os.path.join(ROOT, "build", "frugal"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "frugal-demo-qa-q8_0.gguf"))
    ap.add_argument("--worlds", type=int, default=30)
    ap.add_argument("--questions", type=int, default=12, help="per world")
    ap.add_argument("--min-docs", type=int, default=20)
    ap.add_argument("--max-docs", type=int, default=30)
    ap.add_argument("--seed", default="test-evaluation")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--cache-type", default="f16", help="KV type of the knowledge caches and answers (f32, f16, q8_0, ...)")
    ap.add_argument("--json", help="write the per-question results here")
    ap.add_argument("--require", nargs="*", default=[], metavar="KIND=MIN",
                    help="minimum exact match per kind (single, two-hop, unanswerable, all)")
    args = ap.parse_args()
    required = {}
    for item in args.require:
        kind, _, minimum = item.partition("=")
        try:
            if kind not in ("single", "two-hop", "unanswerable", "all"):
                raise ValueError(kind)
            required[kind] = float(minimum)
        except ValueError:
            ap.error(f"--require {item}: expected KIND=MIN with KIND single, two-hop, unanswerable or all "
                     "and MIN a number such as 0.9")
    rng = random.Random(args.seed)
    pools = Pools("test")
    results, tokens = [], []
    with tempfile.TemporaryDirectory() as work:
        for w in range(args.worlds):
            example = make_example(rng, pools, rng.randint(args.min_docs, args.max_docs))
            docs = os.path.join(work, "docs.jsonl")
            with open(docs, "w") as f:
                for d in example["documents"]:
                    f.write(json.dumps(d) + "\n")
            kb = os.path.join(work, "kb.fkv")
            subprocess.run([args.frugal, "kb", "build", "-q", "-m", args.model, "-t", args.threads, "--docs", docs,
                            "-o", kb, "--reserve", "64", "--cache-type", args.cache_type], check=True)
            info = subprocess.run([args.frugal, "kb", "info", "--no-verify", kb], check=True, capture_output=True,
                                  text=True).stdout
            tokens.append(int(re.search(r"keys/values: (\d+)", info).group(1)))
            # The same number of questions of each kind where the world has them.
            by_kind = defaultdict(list)
            for q in example["questions"]:
                by_kind[q["kind"]].append(q)
            chosen = []
            for kind in sorted(by_kind):
                chosen += rng.sample(by_kind[kind], min(len(by_kind[kind]), args.questions // 3))
            out = subprocess.run([args.frugal, "ask", "-m", args.model, "-t", args.threads, "--kb", kb, "-i",
                                  "--json", "--temp", "0", "-n", "24", "--no-verify", "--cache-type", args.cache_type],
                                 input="".join(q["question"] + "\n" for q in chosen), check=True,
                                 capture_output=True, text=True).stdout
            for q, line in zip(chosen, out.splitlines()):
                answer = json.loads(line)["answer"].strip()
                results.append({"world": w, "documents": len(example["documents"]), "kind": q["kind"],
                                "question": q["question"], "expected": q["answer"], "answer": answer,
                                "exact": normalize(answer) == normalize(q["answer"])})
            print(f"world {w + 1}/{args.worlds}: {len(example['documents'])} documents, {tokens[-1]} tokens",
                  file=sys.stderr)
    summary = {}
    for kind in ("single", "two-hop", "unanswerable"):
        rows = [r for r in results if r["kind"] == kind]
        summary[kind] = {"questions": len(rows), "exact_match": round(sum(r["exact"] for r in rows) / max(len(rows), 1), 4)}
    summary["all"] = {"questions": len(results),
                      "exact_match": round(sum(r["exact"] for r in results) / max(len(results), 1), 4)}
    summary["context_tokens"] = {"min": min(tokens), "max": max(tokens), "mean": round(sum(tokens) / len(tokens))}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "results": results}, f, indent=1)
    below = [f"{kind}: {summary[kind]['exact_match']} < {minimum}" for kind, minimum in required.items()
             if summary[kind]["exact_match"] < minimum]
    if below:
        print("exact match below the required minimum: " + "; ".join(below), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
