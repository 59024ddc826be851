"""Writes one synthetic test world of the thinking model (tools/demo/thinking.py)
as a HotpotQA-format dataset for `frugal oae run --dataset`: its documents and
its two-hop, counting and summing questions (the thinking kinds).

    python3 tools/demo/export_thinking_eval.py [--documents 15] [--seed thinking-oae] -o examples/thinking-world-hotpot.json

Each question's context is the documents that hold its answer (also its
supporting facts); the loader merges contexts by title into the corpus, and
the documents no question names come in as the context of the first
question (as distractors), so the corpus is the whole world. Standard library only.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thinking import make_thinking_example  # noqa: E402
from world import Pools  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", type=int, default=15)
    ap.add_argument("--seed", default="thinking-oae")
    ap.add_argument("--kinds", nargs="*", default=["two-hop", "counting", "summing"])
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    example = make_thinking_example(random.Random(args.seed), Pools("test"), args.documents)
    text = {d["title"]: d["text"] for d in example["documents"]}
    items = []
    for i, q in enumerate(example["questions"]):
        if q["kind"] not in args.kinds or not q["sources"]:
            continue
        items.append({"_id": f"{q['kind']}-{i}", "question": q["question"], "answer": q["answer"], "type": q["kind"],
                      "context": [[title, [text[title]]] for title in q["sources"]],
                      "supporting_facts": [[title, 0] for title in q["sources"]]})
    named = {title for item in items for title, _ in item["context"]}
    missing = [t for t in text if t not in named]
    if missing and items:  # the rest of the world rides along with the first question, as distractors
        items[0]["context"] += [[t, [text[t]]] for t in missing]
    with open(args.out, "w") as f:
        json.dump(items, f, indent=0, ensure_ascii=False)
        f.write("\n")
    kinds = {k: sum(1 for it in items if it["type"] == k) for k in args.kinds}
    print(f"{args.out}: {len(example['documents'])} documents, {len(items)} questions {kinds}", file=sys.stderr)


if __name__ == "__main__":
    main()
