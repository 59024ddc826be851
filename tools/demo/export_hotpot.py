"""Writes one synthetic test world as a HotpotQA-format dataset for the OAE
benchmark (`frugal oae run --dataset`), so CAG, RAG and long context can be
compared on answer quality with the demo model, which answers questions
about such worlds (models/README.md).

    python3 tools/demo/export_hotpot.py [--documents 40] [--seed oae-demo] -o examples/demo-world-hotpot.json

Each question's context is the documents that hold its answer (also its
supporting facts, which RAG's recall is measured against); the loader
merges the contexts by title into the corpus, so every document of the world
appears once however many questions name it. Single-hop and two-hop
questions only: HotpotQA has no unanswerable ones. Standard library only.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import Pools, make_example  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", type=int, default=40)
    ap.add_argument("--seed", default="oae-demo")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    example = make_example(random.Random(args.seed), Pools("test"), args.documents)
    text = {d["title"]: d["text"] for d in example["documents"]}
    items = []
    for i, q in enumerate(example["questions"]):
        if q["kind"] == "unanswerable":
            continue
        items.append({"_id": f"{q['kind']}-{i}", "question": q["question"], "answer": q["answer"], "type": q["kind"],
                      "context": [[title, [text[title]]] for title in q["sources"]],
                      "supporting_facts": [[title, 0] for title in q["sources"]]})
    named = {title for item in items for title, _ in item["context"]}
    missing = [t for t in text if t not in named]
    assert not missing, f"documents no question names: {missing}"
    with open(args.out, "w") as f:
        json.dump(items, f, indent=0, ensure_ascii=False)
        f.write("\n")
    kinds = {k: sum(1 for it in items if it["type"] == k) for k in ("single", "two-hop")}
    print(f"{args.out}: {len(example['documents'])} documents, {len(items)} questions {kinds}", file=sys.stderr)


if __name__ == "__main__":
    main()
