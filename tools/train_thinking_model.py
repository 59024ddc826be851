"""Trains frugal's thinking model (models/frugal-think.md, issue #17) on one GPU,
continuing the demo QA model (models/frugal-demo-qa-q8_0.gguf).

The model, its export and its loading are tools/train_demo_model.py's. The
vocabulary is llama-spm plus four added tokens (`<|im_start|>`, `<|im_end|>`,
`<think>`, `</think>`; tools/demo/chat_prompt.py): their embedding rows start
at the mean embedding plus a little noise (the output matrix is tied). The
data are tools/demo/thinking.py's worlds in frugal's ChatML knowledge prompt,
packed as the demo script packs them (each question/answer branch sees its
knowledge prefix and itself only), half the branches thinking
(`<think>\\n{chain}\\n</think>\\n\\n{answer}<|im_end|>`) and half not
(prompt ending in the empty think block, `{answer}<|im_end|>`). Loss on the
assistant's tokens (the final answer weighs `--answer-weight`) and a small
language-model loss on document tokens.

    python3 tools/train_thinking_model.py --init models/frugal-demo-qa-q8_0.gguf --out DIR --max-minutes 7.5

writes DIR/frugal-think-f32.gguf (on the Q8_0 grid), DIR/frugal-think-q8_0.gguf,
DIR/samples.json (greedy chains of a few validation questions) and DIR/train_log.json.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo"))
import train_demo_model as demo  # noqa: E402
from chat_prompt import (IM_END, assistant_tokens, chat_vocab_metadata, prefix_tokens,  # noqa: E402
                         question_tokens)
from spm import SpmTokenizer  # noqa: E402
from thinking import build_thinking_sequence, make_thinking_example, pick_questions  # noqa: E402
from world import Pools  # noqa: E402

VOCAB = 32004


class ThinkingExamples(torch.utils.data.IterableDataset):
    def __init__(self, vocab_path, seed, length, max_questions, think_prob, answer_weight, cut_prob):
        self.vocab_path, self.seed, self.length, self.cut_prob = vocab_path, seed, length, cut_prob
        self.max_questions, self.think_prob, self.answer_weight = max_questions, think_prob, answer_weight

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info else 0
        rng = random.Random(f"{self.seed}:think-train:{worker}")
        tok = SpmTokenizer(chat_vocab_metadata(self.vocab_path))
        pools = Pools("train", tok.tokens)
        while True:
            yield demo.as_tensors(build_thinking_sequence(rng, tok, pools, self.length,
                                                          max_questions=self.max_questions,
                                                          think_prob=self.think_prob,
                                                          answer_weight=self.answer_weight,
                                                          cut_prob=self.cut_prob))


def grow_vocab(model, vocab, seed):
    """Appends embedding rows (mean embedding plus noise of a tenth of the weights' spread)."""
    old = model.embed.weight.data
    gen = torch.Generator().manual_seed(seed)
    extra = old.mean(0, keepdim=True) + 0.1 * old.std() * torch.randn(vocab - old.shape[0], old.shape[1],
                                                                        generator=gen)
    model.embed = torch.nn.Embedding(vocab, old.shape[1])
    with torch.no_grad():
        model.embed.weight.copy_(torch.cat([old, extra]))
    model.c["vocab"] = vocab


@torch.no_grad()
def answer_exact(model, batch, device):
    """Teacher-forced: share of branches whose final answer tokens (weight >= 2:
    after `</think>`, or the whole answer without thinking) are all the argmax."""
    tokens, positions, groups, branches, targets, weights = (x.to(device) for x in batch)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        h = model.hidden(tokens, positions, demo.branch_mask(groups, branches))
    pred = model.logits(h.float()).argmax(-1)
    ok = pred == targets
    correct = total = 0
    for b in range(tokens.shape[0]):
        for br in branches[b].unique().tolist():
            if br == 0 or br >= 10_000:
                continue
            sel = (branches[b] == br) & (weights[b] >= 2.0)
            if sel.any():
                total += 1
                correct += bool(ok[b][sel].all())
    return round(correct / max(total, 1), 4)


@torch.no_grad()
def greedy_cached(model, prompt, max_tokens, eos, device):
    """Greedy continuation (whole sequence recomputed each step; short prompts only)."""
    ids = list(prompt)
    out = []
    for _ in range(max_tokens):
        t = torch.tensor([ids], device=device)
        mask = torch.ones(len(ids), len(ids), dtype=torch.bool, device=device).tril()[None, None]
        h = model.hidden(t, torch.arange(len(ids), device=device)[None], mask)
        nxt = int(model.logits(h[0, -1:]).argmax(-1))
        out.append(nxt)
        if nxt == eos:
            break
        ids.append(nxt)
    return out


def export_and_sample(model, vocab, meta, tok, out_dir, n_samples, max_tokens, device):
    """Exports (F32 on the Q8_0 grid and Q8_0; the model's weights are snapped)
    and returns greedy samples of validation questions, thinking and not, computed
    with the snapped weights in float32. The model is left on `device`, float32."""
    model = model.float().cpu().eval()
    demo.export(model, vocab, os.path.join(out_dir, "frugal-think-f32.gguf"),
                os.path.join(out_dir, "frugal-think-q8_0.gguf"), name="frugal-think", tokenizer_meta=meta)
    model = model.to(device)
    rng = random.Random("think-samples")
    samples = []
    for i in range(n_samples):
        ex = make_thinking_example(rng, Pools("validation"), 6)
        chosen = pick_questions(rng, ex["questions"], 1)
        q = chosen[i % len(chosen)]
        for think in (True, False):
            prompt = prefix_tokens(tok, ex["documents"]) + question_tokens(tok, q["question"], thinking=think)
            out = greedy_cached(model, prompt, max_tokens if think else 24, IM_END, device)
            samples.append({"question": q["question"], "kind": q["kind"], "expected": q["answer"], "thinking": think,
                            "prompt_tokens": len(prompt), "output": tok.decode(out),
                            "target_tokens": assistant_tokens(tok, q["answer"], q["chain"] if think else None),
                            "output_tokens": out})
            print(json.dumps({k: samples[-1][k] for k in ("kind", "thinking", "expected", "output")}), flush=True)
    model.train()
    return samples


def main():
    ap = argparse.ArgumentParser()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    ap.add_argument("--vocab", default=os.path.join(root, "..", "shared", "vocab", "ggml-vocab-llama-spm.gguf"))
    ap.add_argument("--init", default=os.path.join(root, "models", "frugal-demo-qa-q8_0.gguf"),
                    help="the demo model (32000 tokens: the vocabulary grows by 4) or an earlier thinking model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--sequence-length", type=int, default=4096)
    ap.add_argument("--max-questions", type=int, default=48, help="branches per knowledge prefix")
    ap.add_argument("--think-prob", type=float, default=0.5, help="share of branches in thinking mode")
    ap.add_argument("--answer-weight", type=float, default=2.0, help="loss weight of the final answer tokens")
    ap.add_argument("--cut-prob", type=float, default=0.0,
                    help="share of thinking branches whose chain is cut (thinking.cut_chain) before the answer")
    ap.add_argument("--max-minutes", type=float, default=0)
    ap.add_argument("--samples", type=int, default=4, help="greedy samples of test questions after training")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = "cuda"
    c = demo.config_of(args.init)
    model = demo.Model(c)
    demo.load_gguf_weights(model, args.init)
    if c["vocab"] < VOCAB:
        grow_vocab(model, VOCAB, args.seed)
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params / 1e6:.2f} M, vocabulary {model.c['vocab']}", flush=True)
    meta = chat_vocab_metadata(args.vocab)
    tok = SpmTokenizer(meta)
    # Smoke test of the export and sampling before training (a failure there would lose the run).
    smoke = os.path.join(args.out, "smoke")
    os.makedirs(smoke, exist_ok=True)
    export_and_sample(model, args.vocab, meta, tok, smoke, 1, 4, device)
    for name in os.listdir(smoke):
        os.remove(os.path.join(smoke, name))
    os.rmdir(smoke)
    data = torch.utils.data.DataLoader(
        ThinkingExamples(args.vocab, args.seed, args.sequence_length, args.max_questions, args.think_prob,
                         args.answer_weight, args.cut_prob),
        batch_size=args.batch, num_workers=args.workers, prefetch_factor=4, persistent_workers=True)
    val = {}
    for mode, p in (("think", 1.0), ("no_think", 0.0)):
        rng = random.Random(f"{args.seed}:think-validation:{mode}")
        pools = Pools("validation")
        val[mode] = [torch.stack(x) for x in zip(*(demo.as_tensors(build_thinking_sequence(
            rng, tok, pools, args.sequence_length, max_questions=args.max_questions, think_prob=p,
            answer_weight=args.answer_weight)) for _ in range(8)))]
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=True)
    warmup = min(args.warmup, args.steps // 10)
    use_flex = demo.BlockMask is not None
    log, start = [], time.time()
    entry = {"step": 0, **{f"val_{m}": answer_exact(model, b, device) for m, b in val.items()}}
    log.append(entry)
    print(json.dumps(entry), flush=True)
    it = iter(data)
    for step in range(1, args.steps + 1):
        lr = args.lr * (step / warmup if step <= warmup else
                        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (args.steps - warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
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
                loss = train_step(demo.branch_block_mask(groups, branches))
            except Exception as e:  # noqa: BLE001
                print(f"flex_attention failed ({type(e).__name__}: {str(e)[:300]}); using dense masks", flush=True)
                use_flex = False
        if not use_flex:
            loss = train_step(demo.branch_mask(groups, branches))
        if step % 100 == 0 or step == args.steps:
            entry = {"step": step, "loss": round(loss.item(), 4), "lr": lr, "seconds": round(time.time() - start, 1)}
            if step % 500 == 0 or step == args.steps:
                entry.update({f"val_{m}": answer_exact(model, b, device) for m, b in val.items()})
            log.append(entry)
            print(json.dumps(entry), flush=True)
    train_seconds = round(time.time() - start, 1)
    samples = export_and_sample(model, args.vocab, meta, tok, args.out, args.samples, 400, device)
    with open(os.path.join(args.out, "samples.json"), "w") as f:
        json.dump(samples, f, indent=1)
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump({"config": model.c, "args": vars(args), "parameters": n_params, "log": log,
                   "seconds": train_seconds, "device": torch.cuda.get_device_name()}, f, indent=1)


if __name__ == "__main__":
    main()
