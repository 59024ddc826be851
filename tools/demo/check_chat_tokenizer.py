"""Checks the chat layout of the thinking model (chat_prompt.py, spm.py's
special-token handling) against frugal:

1. token ids of header, document, question (thinking on and off) and
   assistant texts (chains, answers) from `frugal tokenize` on a vocabulary-only
   GGUF with the four added tokens, for generated thinking worlds;
2. with --model, the prompt length `frugal ask --no-cache --json` reports for
   whole worlds, thinking on and off (the prompt frugal builds from the chat
   template, segment by segment), against prefix + question tokens here.

    python3 tools/demo/check_chat_tokenizer.py [--frugal build/frugal] [--model models/frugal-think-q8_0.gguf] [--worlds 4]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_prompt import (NO_THINK, SYSTEM, assistant_text, chat_vocab_metadata, document_tokens,  # noqa: E402
                         header_tokens, prefix_tokens, question_tokens, write_vocab)
from spm import SpmTokenizer  # noqa: E402
from thinking import make_thinking_example  # noqa: E402
from world import Pools  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frugal", default=os.path.join(ROOT, "build", "frugal"))
    ap.add_argument("--vocab", default=os.path.join(ROOT, "..", "shared", "vocab", "ggml-vocab-llama-spm.gguf"))
    ap.add_argument("--model", help="also compare frugal ask's prompt length for whole worlds")
    ap.add_argument("--worlds", type=int, default=4)
    args = ap.parse_args()
    tok = SpmTokenizer(chat_vocab_metadata(args.vocab))
    failures = checked = 0
    with tempfile.TemporaryDirectory() as work:
        vocab = os.path.join(work, "vocab.gguf")
        write_vocab(args.vocab, vocab)

        def frugal_ids(text):
            out = subprocess.run([args.frugal, "tokenize", "-m", vocab, "--ids", "--no-bos", "--no-escape", "-p", text],
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out)

        def compare(text, ours):
            nonlocal failures, checked
            checked += 1
            theirs = frugal_ids(text)
            if ours != theirs:
                failures += 1
                print(f"MISMATCH {text!r}\n  python {ours}\n  frugal {theirs}")

        # Fixed texts: special tokens next to spaces, newlines and text.
        for text in ["\n</think>\n\n", "<think>\n\n</think>\n\n", "<|im_end|>\n<|im_start|>assistant\n",
                     "<think>\nx\n</think>\n\n42", " <think> a</think>b", "<|im_start|>user\nHi<|im_end|>",
                     "a<think>b", "Wait, 12 + 7 = 19.\n\nSo the answer is 19.", "<|im_end|>"]:
            compare(text, tok.encode_special(text))
        compare(f"<|im_start|>user\n{SYSTEM}\n\n", header_tokens(tok)[1:])
        rng = random.Random(11)
        worlds = []
        for split in ("train", "test", "validation"):
            for _ in range(2):
                ex = make_thinking_example(rng, Pools(split, tok.tokens if split == "train" else None), rng.randint(5, 15))
                worlds.append(ex)
                for doc in ex["documents"][:5]:
                    compare(f"Document [{doc['id']}] {doc['title']}\n{doc['text']}\n\n", document_tokens(tok, doc))
                qs = rng.sample(ex["questions"], min(6, len(ex["questions"])))
                for q in qs:
                    for think in (True, False):
                        text = f"Question: {q['question']}<|im_end|>\n<|im_start|>assistant\n" + ("" if think else NO_THINK)
                        compare(text, question_tokens(tok, q["question"], thinking=think))
                        text = assistant_text(q["answer"], q["chain"] if think else None)
                        compare(text, tok.encode_special(text))
        print(f"{checked - failures}/{checked} texts tokenize identically")
        if args.model:
            for i, ex in enumerate(worlds[2:2 + args.worlds]):
                docs = os.path.join(work, "docs.jsonl")
                with open(docs, "w") as f:
                    for d in ex["documents"]:
                        f.write(json.dumps({"id": d["id"], "title": d["title"], "text": d["text"]}) + "\n")
                q = ex["questions"][0]["question"]
                for think in ("on", "off"):
                    out = subprocess.run([args.frugal, "ask", "-m", args.model, "-t", "2", "--docs", docs, "--no-cache",
                                          "--json", "--temp", "0", "-n", "1", "--thinking", think, q],
                                         check=True, capture_output=True, text=True).stdout
                    theirs = json.loads(out)["prompt_tokens"]
                    # With thinking off the prompt ends with the empty thinking block.
                    ours = len(prefix_tokens(tok, ex["documents"])) + len(question_tokens(tok, q, think == "on"))
                    checked += 1
                    if ours != theirs:
                        failures += 1
                    print(f"world {i}: {len(ex['documents'])} documents, thinking {think}: prompt tokens python {ours} "
                          f"frugal ask {theirs}{'' if ours == theirs else '  MISMATCH'}")
    print("OK" if not failures else f"{failures} MISMATCHES")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
