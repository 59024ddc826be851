#!/usr/bin/env python3
"""The LoRA trainer's loss and gradients against PyTorch autograd.

Converts the demo model to F32 with `frugal quantize` (its Q8_0 values are
exactly representable in F32, which this checks, so the copy IS the demo
model, and frugal's F32 matrix products keep the activations in F32: no
activation quantization differs from the reference), runs
lora_gradient_dump on it, then recomputes the same loss in float64 with
PyTorch from the file's weights and the dumped A and B, and compares
autograd's gradients of every A and B with the trainer's.

The Llama forward here follows frugal/llama.cpp: RMSNorm, rotary embedding
in the ggml way (theta_scale = base^(-2/dims) in float32, pair i's angle at
position p the float32 product p * theta_scale * ... * theta_scale, i
times; pairs (2i, 2i+1) for the "normal" style, (i, i + dims/2) for neox),
causal attention scaled by 1/sqrt(head_size), SwiGLU, the output matrix
tied to the embeddings when the file has none, and LoRA as
y = W x + factor * B (A x) on the projections the dump names.

The loss is target_weight * (sum of cross entropies over the targets, token
t predicted by row t - 1) + preserve_weight * (sum over preserved rows of
KL(base || tuned) over the kept ids and the rest as one outcome), as
LoraTrainingPass::run defines it.

Tolerance (frugal computes in float32, the reference in float64): the
losses within 1e-4 relative; each gradient matrix G within 1e-4 of its
largest entry, max|G_frugal - G_torch| / max|G_torch|. Per-element
relative errors are meaningless for entries near zero (sums that cancel),
so the largest entry of the same matrix is the scale. The relative
Frobenius error is printed too, for information.

Usage (the ctest lora_torch_reference runs this):
  check_lora_gradients.py --frugal build/frugal --dump build/tests/lora_gradient_dump \\
      --model models/frugal-demo-qa-q8_0.gguf [--work DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as missing:
    sys.exit(f"{missing}: this check needs PyTorch and NumPy (Debian: python3-torch, which scripts/setup.sh "
             f"installs; it is seen by /usr/bin/python3)")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools", "demo"))
import gguf  # noqa: E402  (tools/demo/gguf.py)


def tensor_as_float32(shape, type_, data):
    """A GGUF tensor as a float32 array of shape (rows, row length)."""
    if type_ == gguf.TENSOR_F32:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    elif type_ == gguf.TENSOR_Q8_0:
        blocks = np.frombuffer(data, dtype=np.dtype([("scale", "<f2"), ("q", "i1", (32,))]))
        values = (blocks["scale"].astype(np.float32)[:, None] * blocks["q"].astype(np.float32)).reshape(-1)
    else:
        raise ValueError(f"tensor type {type_} is not read here")
    # ggml order: the first dimension is the row length.
    return values.reshape(list(reversed(shape))) if len(shape) > 1 else values


def read_weights(path):
    return {name: tensor_as_float32(*info) for name, info in gguf.read_tensors(path).items()}


class Config:
    def __init__(self, metadata):
        arch = metadata["general.architecture"].value
        if arch != "llama":
            raise SystemExit(f"this reference implements the llama architecture, not {arch}")

        def get(key, default=None):
            value = metadata.get(f"{arch}.{key}")
            return default if value is None else value.value

        self.embedding = get("embedding_length")
        self.layers = get("block_count")
        self.heads = get("attention.head_count")
        self.kv_heads = get("attention.head_count_kv", self.heads)
        self.head_size = get("attention.key_length", self.embedding // self.heads)
        self.eps = get("attention.layer_norm_rms_epsilon")
        self.rope_dims = get("rope.dimension_count", self.head_size)
        self.rope_base = get("rope.freq_base", 10000.0)
        if get("rope.scaling.type", "none") not in ("none",):
            raise SystemExit("rope scaling is not implemented in this reference")


def rope_tables(config, positions):
    """cos and sin [positions x pairs], angles computed as ggml does, in float32."""
    pairs = config.rope_dims // 2
    theta_scale = np.float32(config.rope_base ** (-2.0 / config.rope_dims))
    angles = np.zeros((positions, pairs), dtype=np.float32)
    for p in range(positions):
        theta = np.float32(p)
        for i in range(pairs):
            angles[p, i] = theta
            theta = np.float32(theta * theta_scale)
    angles = torch.from_numpy(angles.astype(np.float64))
    return torch.cos(angles), torch.sin(angles)


def rotate(x, cos, sin, config, neox=False):
    """x [n x heads x head_size]: the leading rope_dims of each head rotated."""
    dims = config.rope_dims
    rotated, rest = x[..., :dims], x[..., dims:]
    if neox:
        x0, x1 = rotated[..., : dims // 2], rotated[..., dims // 2:]
    else:
        x0, x1 = rotated[..., 0::2], rotated[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    y0, y1 = x0 * c - x1 * s, x0 * s + x1 * c
    if neox:
        out = torch.cat([y0, y1], dim=-1)
    else:
        out = torch.stack([y0, y1], dim=-1).flatten(-2)
    return torch.cat([out, rest], dim=-1)


def rms_norm(x, weight, eps):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


class Reference:
    def __init__(self, config, weights, lora, factor):
        self.c, self.w, self.lora, self.factor = config, weights, lora, factor

    def linear(self, name, x):
        y = x @ self.w[name].T
        if name in self.lora:
            a, b = self.lora[name]
            y = y + self.factor * ((x @ a.T) @ b.T)
        return y

    def logits(self, tokens):
        c, w = self.c, self.w
        n = len(tokens)
        cos, sin = rope_tables(c, n)
        x = w["token_embd.weight"][torch.tensor(tokens)]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        group = c.heads // c.kv_heads
        for layer in range(c.layers):
            p = f"blk.{layer}."
            h = rms_norm(x, w[p + "attn_norm.weight"], c.eps)
            q = self.linear(p + "attn_q.weight", h).view(n, c.heads, c.head_size)
            k = self.linear(p + "attn_k.weight", h).view(n, c.kv_heads, c.head_size)
            v = self.linear(p + "attn_v.weight", h).view(n, c.kv_heads, c.head_size)
            q, k = rotate(q, cos, sin, c), rotate(k, cos, sin, c)
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            scores = torch.einsum("ihd,jhd->hij", q, k) / (c.head_size ** 0.5)
            weights = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
            attention = torch.einsum("hij,jhd->ihd", weights, v).reshape(n, c.heads * c.head_size)
            mid = x + self.linear(p + "attn_output.weight", attention)
            h = rms_norm(mid, w[p + "ffn_norm.weight"], c.eps)
            gate, up = self.linear(p + "ffn_gate.weight", h), self.linear(p + "ffn_up.weight", h)
            x = mid + self.linear(p + "ffn_down.weight", torch.nn.functional.silu(gate) * up)
        output = w.get("output.weight", w["token_embd.weight"])
        return rms_norm(x, w["output_norm.weight"], c.eps) @ output.T


def sequence_loss(logits, case):
    """(cross entropy sum, divergence sum) as LoraTrainingPass::run defines them."""
    tokens = case["tokens"]
    log_probs = torch.log_softmax(logits, dim=-1)
    cross_entropy = torch.zeros((), dtype=logits.dtype)
    for t in case["targets"]:
        cross_entropy = cross_entropy - log_probs[t - 1, tokens[t]]
    divergence = torch.zeros((), dtype=logits.dtype)
    for d in case["preserved"]:
        row = log_probs[d["row"]]
        ids = torch.tensor(d["ids"])
        p = torch.tensor(d["probabilities"], dtype=logits.dtype)
        kept = p > 0
        divergence = divergence + (p[kept] * (torch.log(p[kept]) - row[ids][kept])).sum()
        if d["tail"] > 0:
            # log of the tuned model's mass outside the kept ids.
            others = torch.ones_like(row, dtype=torch.bool)
            others[ids] = False
            log_rest = torch.logsumexp(row[others], dim=0)
            divergence = divergence + d["tail"] * (np.log(d["tail"]) - log_rest)
    return cross_entropy, divergence


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frugal", required=True, help="the frugal binary (for `frugal quantize`)")
    parser.add_argument("--dump", required=True, help="the lora_gradient_dump binary")
    parser.add_argument("--model", required=True, help="the model (the demo model, Q8_0)")
    parser.add_argument("--work", help="directory for the F32 copy and the dump (default: a temporary one)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small problem; don't compete with builds

    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or temporary
        os.makedirs(work, exist_ok=True)
        f32_model = os.path.join(work, "model-f32.gguf")
        dump_dir = os.path.join(work, "dump")
        subprocess.run([args.frugal, "quantize", args.model, f32_model, "F32"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([args.dump, f32_model, dump_dir], check=True)
        with open(os.path.join(dump_dir, "dump.json")) as f:
            dump = json.load(f)
        floats = np.fromfile(os.path.join(dump_dir, "dump.bin"), dtype="<f4")
        config = Config(gguf.read_metadata(f32_model))
        weights32 = read_weights(f32_model)

    # The F32 copy holds exactly the demo model's values.
    original = read_weights(args.model)
    if sorted(original) != sorted(weights32):
        raise SystemExit("FAIL: the F32 copy's tensors differ from the model's")
    for name, values in original.items():
        if not np.array_equal(values, weights32[name]):
            raise SystemExit(f"FAIL: {name} changed in the F32 conversion")

    weights = {name: torch.from_numpy(v.astype(np.float64)) for name, v in weights32.items()}

    def span(offset, rows, cols):
        return floats[offset:offset + rows * cols].reshape(rows, cols)

    factor = float(np.float32(dump["factor"]))
    lora = {}
    for m in dump["matrices"]:
        a = torch.tensor(span(m["a"], m["rank"], m["cols"]), dtype=torch.float64, requires_grad=True)
        b = torch.tensor(span(m["b"], m["rows"], m["rank"]), dtype=torch.float64, requires_grad=True)
        lora[m["name"]] = (a, b)
    reference = Reference(config, weights, lora, factor)
    print(f"{len(dump['matrices'])} LoRA matrices, rank {dump['rank']}, factor {factor}; "
          f"tolerance {args.tolerance:g} relative")

    failures = []
    for case in dump["cases"]:
        for a, b in lora.values():
            a.grad = b.grad = None
        logits = reference.logits(case["tokens"])
        cross_entropy, divergence = sequence_loss(logits, case)
        total = case["target_weight"] * cross_entropy + case["preserve_weight"] * divergence
        total.backward()

        print(f"\ncase {case['name']}: {len(case['tokens'])} tokens, {len(case['targets'])} targets, "
              f"{len(case['preserved'])} preserved rows")
        if case["targets"]:
            ce_mean = float(cross_entropy) / len(case["targets"])
            error = relative(case["cross_entropy_mean"], ce_mean)
            print(f"  cross entropy (mean): frugal {case['cross_entropy_mean']:.9f} torch {ce_mean:.9f} "
                  f"relative difference {error:.2e}")
            if not error <= args.tolerance:
                failures.append(f"{case['name']}: cross entropy {error:.2e}")
        elif case["cross_entropy_sum"] != 0:
            failures.append(f"{case['name']}: a cross entropy without targets")
        if case["preserved"]:
            error = relative(case["divergence_sum"], float(divergence))
            print(f"  divergence (sum):     frugal {case['divergence_sum']:.9f} torch {float(divergence):.9f} "
                  f"relative difference {error:.2e}")
            if not error <= args.tolerance:
                failures.append(f"{case['name']}: divergence {error:.2e}")

        results = []  # (max-scaled error, Frobenius error, label)
        for m, g in zip(dump["matrices"], case["gradients"]):
            a, b = lora[m["name"]]
            for which, tensor, offset, shape in (("A", a, g["grad_a"], (m["rank"], m["cols"])),
                                                  ("B", b, g["grad_b"], (m["rows"], m["rank"]))):
                ours = span(offset, *shape).astype(np.float64)
                theirs = tensor.grad.numpy()
                scale = np.abs(theirs).max()
                if scale == 0:
                    failures.append(f"{case['name']}: {m['name']} {which}: the reference gradient is zero")
                    continue
                difference = ours - theirs
                results.append((np.abs(difference).max() / scale,
                                np.linalg.norm(difference) / np.linalg.norm(theirs), f"{m['name']} {which}"))
        results.sort(reverse=True)
        print("  worst gradients, max|frugal - torch| / max|torch| (relative Frobenius error):")
        for error, frobenius, label in results[:6]:
            print(f"    {label:28s} {error:.2e} ({frobenius:.2e})")
        for error, _, label in results:
            if not error <= args.tolerance:
                failures.append(f"{case['name']}: {label} gradient {error:.2e}")

    if failures:
        print(f"\nFAIL: {len(failures)} values differ from PyTorch autograd by more than {args.tolerance:g}:")
        for failure in failures[:40]:
            print(f"  {failure}")
        return 1
    print("\nOK: the trainer's losses and LoRA gradients match PyTorch autograd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
