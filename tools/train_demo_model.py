"""Trains frugal's demo knowledge-QA model (models/README.md) on one GPU.

A Llama-architecture model (tied embeddings, RMSNorm, RoPE on adjacent pairs,
grouped-query attention, SwiGLU; exactly what frugal's engine runs) with the
llama-spm vocabulary, trained on synthetic knowledge worlds (tools/demo/world.py)
laid out in frugal's plain knowledge prompt (documents, question, answer).

Each training sequence holds one or more knowledge prefixes, each followed by
several question/answer branches. Every branch starts at the position right
after its prefix and sees that prefix and itself only (an attention mask and
explicit positions),
so each branch is exactly a CAG prompt as `frugal ask` builds it, and one
prefix pays for many answers. Document tokens also get a language-model loss,
so the model is a small language model of this kind of text too.

    python3 tools/train_demo_model.py --steps 3000 --out DIR

writes DIR/frugal-demo-qa-f32.gguf (weights snapped to the Q8_0 grid: the
Q8_0 file `frugal quantize` makes from it holds exactly the same weights),
DIR/frugal-demo-qa-q8_0.gguf (that Q8_0 file, written here, small enough to
fetch from a GPU machine),
DIR/greedy.json (greedy continuations of fixed prompts, computed in float32 on
the CPU, for tests/model/demo_model_test.cpp) and DIR/train_log.json.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

try:  # block-sparse attention for the prefix/branch mask; plain SDPA with a dense mask otherwise
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
    compiled_flex_attention = torch.compile(flex_attention, dynamic=False)
except ImportError:  # older PyTorch
    BlockMask = None

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo"))
import gguf  # noqa: E402
from prompt import answer_tokens, prefix_tokens, question_tokens  # noqa: E402
from spm import SpmTokenizer  # noqa: E402
from world import Pools, make_example  # noqa: E402

CONFIG = dict(vocab=32000, dim=192, layers=8, heads=6, kv_heads=6, ffn=512, context=2048, rope_base=500000.0,
              eps=1e-5)


# ----------------------------------------------------------------------------- model

class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hs = c["dim"], c["dim"] // c["heads"]
        self.heads, self.kv_heads, self.head_size = c["heads"], c["kv_heads"], hs
        self.attn_norm = torch.nn.Parameter(torch.ones(d))
        self.q = torch.nn.Linear(d, c["heads"] * hs, bias=False)
        self.k = torch.nn.Linear(d, c["kv_heads"] * hs, bias=False)
        self.v = torch.nn.Linear(d, c["kv_heads"] * hs, bias=False)
        self.o = torch.nn.Linear(c["heads"] * hs, d, bias=False)
        self.ffn_norm = torch.nn.Parameter(torch.ones(d))
        self.gate = torch.nn.Linear(d, c["ffn"], bias=False)
        self.up = torch.nn.Linear(d, c["ffn"], bias=False)
        self.down = torch.nn.Linear(c["ffn"], d, bias=False)
        self.eps = c["eps"]

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = rms_norm(x, self.attn_norm, self.eps)
        q = rope(self.q(h).view(b, t, self.heads, self.head_size), cos, sin).transpose(1, 2)
        k = rope(self.k(h).view(b, t, self.kv_heads, self.head_size), cos, sin).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv_heads, self.head_size).transpose(1, 2)
        if BlockMask is not None and isinstance(mask, BlockMask):
            a = compiled_flex_attention(q, k, v, block_mask=mask, enable_gqa=True)
        else:
            group = self.heads // self.kv_heads  # query head i uses KV head i // group, as llama.cpp does
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        h = rms_norm(x, self.ffn_norm, self.eps)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rms_norm(x, weight, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight.type_as(x)


def rope(x, cos, sin):
    """Rotates adjacent pairs (x[2i], x[2i+1]) by position * base^(-2i/d): GGUF's llama convention."""
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
    return out.type_as(x)


class Model(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = torch.nn.Embedding(c["vocab"], c["dim"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = torch.nn.Parameter(torch.ones(c["dim"]))
        hs = c["dim"] // c["heads"]
        self.register_buffer("inv_freq", c["rope_base"] ** (-torch.arange(0, hs, 2).float() / hs), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["layers"]) if name.endswith(("o.weight", "down.weight")) else 0.02
                torch.nn.init.normal_(p, std=std)

    def hidden(self, tokens, positions, mask):
        angles = positions.float()[..., None] * self.inv_freq
        cos, sin = angles.cos(), angles.sin()
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return rms_norm(x, self.norm, self.c["eps"])

    def logits(self, hidden):
        return hidden @ self.embed.weight.type_as(hidden).t()


def branch_mask(groups, branches):
    """Token i sees token j when j <= i, both belong to the same example
    (group), and j is in that example's knowledge prefix (branch 0) or in i's
    own question/answer branch. [B, 1, T, T] booleans."""
    t = branches.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=branches.device).tril()
    same_group = groups[:, :, None] == groups[:, None, :]
    visible = (branches[:, None, :] == 0) | (branches[:, :, None] == branches[:, None, :])
    return (causal & same_group & visible)[:, None]


def branch_block_mask(groups, branches):
    """The same mask as branch_mask, block-sparse for flex_attention."""
    def mask_mod(b, h, q, kv):
        return ((kv <= q) & (groups[b, q] == groups[b, kv])
                & ((branches[b, kv] == 0) | (branches[b, q] == branches[b, kv])))
    b, t = branches.shape
    return torch.compile(create_block_mask)(mask_mod, b, None, t, t, device=branches.device)


# ----------------------------------------------------------------------------- data

class Examples(torch.utils.data.IterableDataset):
    """Endless training sequences, each from freshly generated worlds."""

    def __init__(self, vocab_path, split, seed, length, max_prefix, long_fraction, max_questions, two_hop_weight):
        self.vocab_path, self.split, self.seed = vocab_path, split, seed
        self.length, self.max_prefix = length, max_prefix
        self.long_fraction, self.max_questions = long_fraction, max_questions
        self.two_hop_weight = two_hop_weight

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        rng = random.Random(f"{self.seed}:{self.split}:{worker}")
        tok = SpmTokenizer(self.vocab_path)
        pools = Pools(self.split, tok.tokens)
        while True:
            yield as_tensors(build_sequence(rng, tok, pools, self.length, self.max_prefix, self.long_fraction,
                                            self.max_questions, two_hop_weight=self.two_hop_weight))


def as_tensors(sequence):
    return tuple(torch.tensor(x) for x in sequence)


def balanced_questions(rng, example):
    # "unknown" is the easy way out: keep it to about one answer in eight.
    questions = [q for q in example["questions"] if q["kind"] != "unanswerable" or rng.random() < 0.35]
    rng.shuffle(questions)
    # Balance the kinds a little: unanswerable and two-hop are rarer.
    questions.sort(key=lambda q: {"two-hop": 0, "unanswerable": 1, "single": 2}[q["kind"]] + rng.random() * 2.5)
    return questions


def build_sequence(rng, tok, pools, context, max_prefix, long_fraction=0.4, max_questions=32,
                   doc_loss_fraction=0.25, two_hop_weight=1.0):
    """One training sequence of `context` tokens: knowledge examples packed
    one after the other, each a prefix (positions from 0) and up to
    `max_questions` question/answer branches. Positions restart at each
    prefix and branches sit beside each other, so a sequence longer than the
    model's context holds more answers per prefix, never a longer prompt. With probability
    `long_fraction` the first example is long (18-32 documents, as in the
    evaluation); the rest are short (3-14 documents), which carry many more
    answers per token. Returns lists: tokens, positions, groups, branches,
    targets, loss weights."""
    tokens, positions, groups, branches, targets, weights = [], [], [], [], [], []
    header = len(prefix_tokens(tok, []))
    group = branch = 0
    while context - len(tokens) > 200:
        room = context - len(tokens)
        long = group == 0 and rng.random() < long_fraction
        for _ in range(20):
            example = make_example(rng, pools, rng.randint(18, 32) if long else rng.randint(3, 14))
            prefix = prefix_tokens(tok, example["documents"])
            if len(prefix) <= min(max_prefix, room - 120):
                break
        else:
            break
        group += 1
        tokens += prefix
        positions += range(len(prefix))
        groups += [group] * len(prefix)
        branches += [0] * len(prefix)
        targets += prefix[1:] + [0]
        for i in range(len(prefix)):  # language-model loss on a sample of document tokens
            weights.append(0.3 if header - 1 <= i < len(prefix) - 1 and rng.random() < doc_loss_fraction else 0.0)
        used = 0
        for q in balanced_questions(rng, example):
            if used == max_questions:
                break
            qt, at = question_tokens(tok, q["question"]), answer_tokens(tok, q["answer"])
            seq = qt + at[:-1]  # the last answer token (EOS) is only a target
            if len(tokens) + len(seq) > context:
                continue
            branch += 1
            used += 1
            tokens += seq
            positions += range(len(prefix), len(prefix) + len(seq))
            groups += [group] * len(seq)
            branches += [branch] * len(seq)
            targets += seq[1:] + [at[-1]]
            weights += [0.0] * len(qt[:-1]) + [two_hop_weight if q["kind"] == "two-hop" else 1.0] * len(at)
    pad = context - len(tokens)
    # Padding: its own group and branch each, no loss (a row with no visible key would be NaN).
    tokens += [0] * pad
    positions += [0] * pad
    groups += list(range(10_000, 10_000 + pad))
    branches += list(range(10_000, 10_000 + pad))
    targets += [0] * pad
    weights += [0.0] * pad
    return tokens, positions, groups, branches, targets, weights


# ----------------------------------------------------------------------------- export

def q8_0_blocks(w):
    """Quantizes a [rows, k] matrix exactly as ggml's Q8_0 does: per block
    of 32, d = amax / 127 (float32), q = roundf(x / d), stored d = fp16(d).
    Returns (q as int8 [rows, k/32, 32], d as float16 [rows, k/32, 1])."""
    w = w.float().cpu()
    rows, k = w.shape
    blocks = w.reshape(rows, k // 32, 32)
    d = blocks.abs().amax(-1, keepdim=True) / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    x = blocks * inv
    q = torch.sign(x) * torch.floor(x.abs() + 0.5)  # roundf: halves away from zero
    return q.to(torch.int8), d.half()


def snap_to_q8_0(w):
    """The weights a Q8_0 file of `w` holds: q * fp16(d), as a float32 [rows, k] matrix."""
    q, d = q8_0_blocks(w)
    # + 0.0 turns -0.0 into 0.0, as ggml's int8 storage does.
    return (q.float() * d.float() + 0.0).reshape(w.shape)


def q8_0_bytes(w):
    """GGUF Q8_0 data of a [rows, k] matrix: per block the fp16 scale, then 32 int8 values."""
    q, d = q8_0_blocks(w)
    return torch.cat((d.view(torch.uint8), q.view(torch.uint8)), dim=-1).contiguous().numpy().tobytes()


def dequantize_q8_0(shape, data):
    rows, k = shape[1], shape[0]
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(rows, k // 32, 34)
    d = raw[..., :2].contiguous().view(torch.float16).float()
    q = raw[..., 2:].contiguous().view(torch.int8).float()
    return (q * d).reshape(rows, k)


def export(model, vocab_path, path, q8_0_path=None, name="frugal-demo-qa", tokenizer_meta=None):
    """Writes the model as F32 GGUF to `path` (and as Q8_0 to `q8_0_path`:
    the same weights, since export first snaps them to the Q8_0 grid).
    `tokenizer_meta` (dict key -> gguf.Value) replaces the `tokenizer.*` keys
    of `vocab_path`."""
    c = model.c
    meta = tokenizer_meta if tokenizer_meta is not None else {
        k: v for k, v in gguf.read_metadata(vocab_path).items() if k.startswith("tokenizer.")}
    header = {
        "general.architecture": gguf.Value(gguf.STRING, "llama"),
        "general.name": gguf.Value(gguf.STRING, name),
        "general.license": gguf.Value(gguf.STRING, "Apache-2.0"),
        "llama.context_length": gguf.Value(gguf.UINT32, c["context"]),
        "llama.embedding_length": gguf.Value(gguf.UINT32, c["dim"]),
        "llama.block_count": gguf.Value(gguf.UINT32, c["layers"]),
        "llama.feed_forward_length": gguf.Value(gguf.UINT32, c["ffn"]),
        "llama.attention.head_count": gguf.Value(gguf.UINT32, c["heads"]),
        "llama.attention.head_count_kv": gguf.Value(gguf.UINT32, c["kv_heads"]),
        "llama.attention.layer_norm_rms_epsilon": gguf.Value(gguf.FLOAT32, c["eps"]),
        "llama.rope.dimension_count": gguf.Value(gguf.UINT32, c["dim"] // c["heads"]),
        "llama.rope.freq_base": gguf.Value(gguf.FLOAT32, c["rope_base"]),
        "llama.vocab_size": gguf.Value(gguf.UINT32, c["vocab"]),
        "general.file_type": gguf.Value(gguf.UINT32, 0),
    }
    header.update(meta)
    tensors, q8_0_tensors = [], []

    def add(name, t):
        t = t.detach().float().cpu().contiguous()
        shape = list(reversed(t.shape))  # ggml order: row length first
        tensors.append((name, shape, t.numpy().astype("<f4").tobytes()))
        if t.dim() == 2:
            q8_0_tensors.append((name, shape, q8_0_bytes(t), gguf.TENSOR_Q8_0))
        else:
            q8_0_tensors.append(tensors[-1])

    with torch.no_grad():
        model.embed.weight.copy_(snap_to_q8_0(model.embed.weight))
        add("token_embd.weight", model.embed.weight)
        for i, b in enumerate(model.blocks):
            for lin in (b.q, b.k, b.v, b.o, b.gate, b.up, b.down):
                lin.weight.copy_(snap_to_q8_0(lin.weight))
            add(f"blk.{i}.attn_norm.weight", b.attn_norm)
            add(f"blk.{i}.attn_q.weight", b.q.weight)
            add(f"blk.{i}.attn_k.weight", b.k.weight)
            add(f"blk.{i}.attn_v.weight", b.v.weight)
            add(f"blk.{i}.attn_output.weight", b.o.weight)
            add(f"blk.{i}.ffn_norm.weight", b.ffn_norm)
            add(f"blk.{i}.ffn_gate.weight", b.gate.weight)
            add(f"blk.{i}.ffn_up.weight", b.up.weight)
            add(f"blk.{i}.ffn_down.weight", b.down.weight)
        add("output_norm.weight", model.norm)
    gguf.write_model(path, header, tensors)
    if q8_0_path:
        header["general.file_type"] = gguf.Value(gguf.UINT32, 7)  # mostly Q8_0
        header["general.quantization_version"] = gguf.Value(gguf.UINT32, 2)  # ggml's, as `frugal quantize` writes
        gguf.write_model(q8_0_path, header, q8_0_tensors)


def config_of(path):
    """The model shape stored in a GGUF file this script exported."""
    m = {k: v.value for k, v in gguf.read_metadata(path).items()}
    c = dict(CONFIG)
    c.update(vocab=m["llama.vocab_size"], dim=m["llama.embedding_length"], layers=m["llama.block_count"],
             heads=m["llama.attention.head_count"], kv_heads=m["llama.attention.head_count_kv"],
             ffn=m["llama.feed_forward_length"], context=m["llama.context_length"],
             rope_base=m["llama.rope.freq_base"], eps=m["llama.attention.layer_norm_rms_epsilon"])
    return c


def load_gguf_weights(model, path):
    """Loads the weights of an F32 or Q8_0 GGUF this script exported. When the
    model has more key/value heads than the file, each stored head is copied
    to the query heads that shared it; when it has more layers, the new ones
    sit evenly between the stored ones, each a copy of the layer before it
    with its output projections zeroed. Either way the model computes the same
    function as the file, with room to grow."""
    tensors = gguf.read_tensors(path)
    hs = model.c["dim"] // model.c["heads"]

    def get(name, like):
        shape, type_, data = tensors[name]
        if type_ == gguf.TENSOR_Q8_0:
            t = dequantize_q8_0(shape, data)
        else:
            t = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(list(reversed(shape)))
        if t.dim() == 2 and t.shape[0] < like.shape[0] and name.endswith(("attn_k.weight", "attn_v.weight")):
            stored, wanted = t.shape[0] // hs, like.shape[0] // hs
            t = t.reshape(stored, hs, -1).repeat_interleave(wanted // stored, dim=0).reshape(like.shape)
        assert t.shape == like.shape, (name, t.shape, like.shape)
        return t

    stored = sum(1 for name in tensors if name.endswith(".attn_norm.weight"))
    added = model.c["layers"] - stored
    # Model layer -> stored layer it starts from: new layer j follows stored
    # layer (j + 1) * stored // (added + 1) - 1 (evenly spread; several may
    # follow one), and repeats it.
    copies_after = [0] * stored
    for j in range(added):
        copies_after[max(0, (j + 1) * stored // (added + 1) - 1)] += 1
    source, new_layers = [], set()
    for i in range(stored):
        source.append(i)
        for _ in range(copies_after[i]):
            source.append(i)
            new_layers.add(len(source) - 1)
    with torch.no_grad():
        model.embed.weight.copy_(get("token_embd.weight", model.embed.weight))
        for i, b in enumerate(model.blocks):
            for name, p in (("attn_norm", b.attn_norm), ("attn_q", b.q.weight), ("attn_k", b.k.weight),
                            ("attn_v", b.v.weight), ("attn_output", b.o.weight), ("ffn_norm", b.ffn_norm),
                            ("ffn_gate", b.gate.weight), ("ffn_up", b.up.weight), ("ffn_down", b.down.weight)):
                p.copy_(get(f"blk.{source[i]}.{name}.weight", p))
            if i in new_layers:
                b.o.weight.zero_()
                b.down.weight.zero_()
        model.norm.copy_(get("output_norm.weight", model.norm))


@torch.no_grad()
def greedy(model, prompt, max_tokens, eos):
    """Greedy continuation recomputed from scratch each step, float32 on the CPU."""
    ids, out = list(prompt), []
    for _ in range(max_tokens):
        t = torch.tensor([ids])
        mask = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()[None, None]
        h = model.hidden(t, torch.arange(len(ids))[None], mask)
        nxt = int(model.logits(h[0, -1:]).argmax(-1))
        out.append(nxt)
        if nxt == eos:
            break
        ids.append(nxt)
    return out


# ----------------------------------------------------------------------------- training

@torch.no_grad()
def evaluate(model, batch, device):
    """Teacher-forced exact answers per question kind: a branch counts when
    every answer token (and the final EOS) is the argmax, which is exactly
    when greedy decoding reproduces it."""
    tokens, positions, groups, branches, targets, weights = (x.to(device) for x in batch)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        h = model.hidden(tokens, positions, branch_mask(groups, branches))
    pred = model.logits(h.float()).argmax(-1)
    ok = (pred == targets) | (weights < 1.0)
    correct = total = 0
    for b in range(tokens.shape[0]):
        for br in branches[b].unique().tolist():
            if br == 0 or br >= 10_000:
                continue
            sel = (branches[b] == br) & (weights[b] >= 1.0)
            total += 1
            correct += bool(ok[b][sel].all())
    return correct / max(total, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "vocab",
                                                    "ggml-vocab-llama-spm.gguf"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--max-prefix", type=int, default=1900)
    ap.add_argument("--sequence-length", type=int, help="tokens per training sequence (default: the model's "
                    "context); longer sequences give each knowledge prefix more question/answer branches")
    ap.add_argument("--max-questions", type=int, default=32, help="question/answer branches per knowledge prefix")
    ap.add_argument("--two-hop-weight", type=float, default=1.0, help="loss weight of two-hop answers (others: 1)")
    ap.add_argument("--init", help="continue from the weights of a GGUF (F32 or Q8_0) this script exported; "
                                   "its shape is kept, except for --kv-heads and --layers (more, by copying) and --rope-base")
    for name in ("dim", "layers", "heads", "kv-heads", "ffn"):
        ap.add_argument(f"--{name}", type=int, help=f"model shape (default {CONFIG[name.replace('-', '_')]})")
    ap.add_argument("--rope-base", type=float, help=f"RoPE frequency base (default {CONFIG['rope_base']:g})")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--long-fraction", type=float, default=0.4,
                    help="share of sequences that start with a long example (18-32 documents)")
    ap.add_argument("--max-minutes", type=float, default=0,
                    help="fit the step count to this training time, measured over the first 50 steps (0: off)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = "cuda"
    c = config_of(args.init) if args.init else dict(CONFIG)
    for name in ("dim", "layers", "heads", "ffn"):
        wanted = getattr(args, name)
        if wanted is not None and args.init and wanted != c[name] and not (name == "layers" and wanted > c[name]):
            sys.exit(f"--{name} {wanted}: {args.init} has {c[name]}; only --kv-heads, --layers (more) and "
                     "--rope-base can change")
        c[name] = wanted or c[name]
    if args.kv_heads and args.init:
        if args.kv_heads % c["kv_heads"] or c["heads"] % args.kv_heads:
            sys.exit(f"--kv-heads {args.kv_heads} must be a multiple of {c['kv_heads']} and divide {c['heads']}")
    c["kv_heads"] = args.kv_heads or c["kv_heads"]
    if c["heads"] % c["kv_heads"] or c["dim"] % c["heads"]:
        sys.exit(f"{c['heads']} heads must split into {c['kv_heads']} key/value heads and divide dim {c['dim']}")
    c["rope_base"] = args.rope_base or c["rope_base"]
    model = Model(c)
    if args.init:
        load_gguf_weights(model, args.init)
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params / 1e6:.2f} M", flush=True)
    data = torch.utils.data.DataLoader(Examples(args.vocab, "train", args.seed, args.sequence_length or c["context"],
                                                args.max_prefix, args.long_fraction, args.max_questions,
                                                args.two_hop_weight),
                                       batch_size=args.batch, num_workers=args.workers, prefetch_factor=4,
                                       persistent_workers=True)
    val_rng = random.Random(f"{args.seed}:validation")
    tok = SpmTokenizer(args.vocab)
    # Validation: long examples only (18-32 documents), as in the evaluation.
    val_batch = [torch.stack(x) for x in zip(*(as_tensors(build_sequence(
        val_rng, tok, Pools("validation"), c["context"], args.max_prefix, long_fraction=1.0)) for _ in range(24)))]
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=True)
    warmup = min(args.warmup, args.steps // 10)
    use_flex = BlockMask is not None
    log, start = [], time.time()
    it = iter(data)
    for step in range(1, args.steps + 1):  # args.steps may shrink (--max-minutes)
        lr = args.lr * (step / warmup if step <= warmup else
                        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        # Steps 21-60 time the steady state (compilation is over by then).
        if step == 21:
            steady_start = time.time()
        if step == 61 and args.max_minutes > 0:
            per_step = (time.time() - steady_start) / 40
            left = args.max_minutes * 60 - (time.time() - start)
            fitted = max(warmup + 1, min(args.steps, 60 + int(left / per_step)))
            print(f"{per_step:.3f} s per step: training {fitted} steps", flush=True)
            args.steps = fitted
        if step > args.steps:
            break
        tokens, positions, groups, branches, targets, weights = (x.to(device, non_blocking=True) for x in next(it))
        def train_step(mask):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                h = model.hidden(tokens, positions, mask)
                sel = weights > 0
                logits = model.logits(h[sel])
                loss_each = F.cross_entropy(logits.float(), targets[sel], reduction="none")
                loss = (loss_each * weights[sel]).sum() / weights[sel].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss

        if use_flex:
            try:
                loss = train_step(branch_block_mask(groups, branches))
            except Exception as e:  # noqa: BLE001  (compilers fail in many ways; the dense path always works)
                print(f"flex_attention failed ({type(e).__name__}: {str(e)[:300]}); using dense masks", flush=True)
                use_flex = False
        if not use_flex:
            loss = train_step(branch_mask(groups, branches))
        if step % 100 == 0 or step == args.steps:
            entry = {"step": step, "loss": round(loss.item(), 4), "lr": lr, "seconds": round(time.time() - start, 1)}
            if step % 500 == 0 or step == args.steps:
                entry["validation_exact"] = round(evaluate(model, val_batch, device), 4)
            log.append(entry)
            print(json.dumps(entry), flush=True)
    model = model.float().cpu().eval()
    gguf_path = os.path.join(args.out, "frugal-demo-qa-f32.gguf")
    export(model, args.vocab, gguf_path, os.path.join(args.out, "frugal-demo-qa-q8_0.gguf"))  # also snaps the model's own weights to the Q8_0 grid
    # Greedy continuations of fixed prompts with the exported (snapped) weights.
    rng = random.Random("greedy-fixture")
    prompts = []
    for n_docs in (3, 6, 12):
        ex = make_example(rng, Pools("test"), n_docs)
        for q in ex["questions"][:1]:
            prompts.append({"text": f"{n_docs} documents; {q['question']}",
                            "tokens": prefix_tokens(tok, ex["documents"]) + question_tokens(tok, q["question"])})
    for text in ("The Harlow Clinic is located in", "Document [1] Brook School\nThe Brook School"):
        prompts.append({"text": text, "tokens": [tok.bos] + tok.encode(text)})
    for p in prompts:
        p["greedy"] = greedy(model, p["tokens"], 16, tok.eos)
        p["greedy_text"] = tok.decode(p["greedy"])
        print(json.dumps({"prompt": p["text"], "greedy": p["greedy_text"]}), flush=True)
    with open(os.path.join(args.out, "greedy.json"), "w") as f:
        json.dump({"model": "frugal-demo-qa (weights of the F32 export, snapped to the Q8_0 grid)",
                   "max_tokens": 16, "eos": tok.eos, "prompts": prompts}, f, indent=1)
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump({"config": c, "args": vars(args), "parameters": n_params, "log": log,
                   "seconds": round(time.time() - start, 1)}, f, indent=1)


if __name__ == "__main__":
    main()
