"""Writes a random LoRA adapter (llama.cpp's GGUF adapter layout) for a base
model, for comparing engines on the same adapter (bench/lora_vs_llama_cpp.sh).

    python3 tools/random_lora.py BASE.gguf OUT.gguf [--rank 4] [--alpha 8] [--scale-std 0.05]
        [--targets attn_q,attn_v,ffn_down] [--seed 1]

Tensors NAME.lora_a (ggml shape [cols, rank]) and NAME.lora_b ([rank, rows])
for each targeted weight of every layer; general.type = adapter,
adapter.type = lora, adapter.lora.alpha. The base's tensors must be F32 or
Q8_0 (what tools/demo/gguf.py reads).
"""
import argparse
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo"))
import gguf  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base")
    p.add_argument("out")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--alpha", type=float, default=8.0)
    p.add_argument("--scale-std", type=float, default=0.05)
    p.add_argument("--targets", default="attn_q,attn_v,ffn_down")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    meta = gguf.read_metadata(args.base)
    tensors = gguf.read_tensors(args.base)
    out = []
    targets = args.targets.split(",")
    for name, (shape, _, _) in sorted(tensors.items()):
        if not any(name.endswith(f".{t}.weight") for t in targets):
            continue
        cols, rows = shape
        a = [rng.gauss(0, args.scale_std) for _ in range(cols * args.rank)]
        b = [rng.gauss(0, args.scale_std) for _ in range(args.rank * rows)]
        out.append((name + ".lora_a", [cols, args.rank], struct.pack(f"<{len(a)}f", *a)))
        out.append((name + ".lora_b", [args.rank, rows], struct.pack(f"<{len(b)}f", *b)))
    if not out:
        sys.exit(f"{args.base}: no tensor matches --targets {args.targets}")
    metadata = {
        "general.architecture": meta["general.architecture"],
        "general.type": gguf.Value(gguf.STRING, "adapter"),
        "adapter.type": gguf.Value(gguf.STRING, "lora"),
        "adapter.lora.alpha": gguf.Value(gguf.FLOAT32, args.alpha),
    }
    gguf.write_model(args.out, metadata, out)
    print(f"{args.out}: {len(out) // 2} matrices, rank {args.rank}, alpha {args.alpha}", file=sys.stderr)


if __name__ == "__main__":
    main()
