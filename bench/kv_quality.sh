#!/usr/bin/env bash
# What each KV cache type costs in quality and saves in memory, on the demo
# QA model (docs/kv-cache-types.md):
#  1. perplexity and KL divergence from F32 keys and values, with top-token
#     agreement, over a text of demo test-world documents and their
#     questions and answers (`frugal perplexity`, llama-perplexity's method);
#  2. the same text and model through llama.cpp's own caches (F32 base, then
#     q8_0 and q4_0 keys and values; they need flash attention there), when
#     the peer's folder is given;
#  3. exact match per question kind over the evaluation worlds
#     (tools/eval_demo_model.py --cache-type), unless WORLDS=0.
#
#   bench/kv_quality.sh [PEER_DIR]
#
# Environment: MODEL (the demo model), TYPES="f32 f16 q8_0 q4_0 q4_h",
# CTX=512 (chunk), CHUNKS=16, WORLDS=30, THREADS=2, WORK=/tmp/frugal-kv-quality.
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${1:-}
frugal=${FRUGAL:-build/frugal}
model=${MODEL:-models/frugal-demo-qa-q8_0.gguf}
types=${TYPES:-"f32 f16 q8_0 q4_0 q4_h"}
ctx=${CTX:-512}
chunks=${CHUNKS:-16}
worlds=${WORLDS:-30}
threads=${THREADS:-2}
work=${WORK:-/tmp/frugal-kv-quality}
mkdir -p "$work"

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); model: $model; date: $(date -u +%Y-%m-%d)"
echo

# The text: test-split worlds (names never seen in training), documents then
# "Question: ... Answer: ..." lines.
python3 - "$work/text.txt" <<'PY'
import os, random, sys
sys.path.insert(0, os.path.join("tools", "demo"))
from world import Pools, make_example
rng, pools, parts = random.Random("kv-quality"), Pools("test"), []
for _ in range(40):
    example = make_example(rng, pools, rng.randint(20, 30))
    parts += [d["title"] + "\n" + d["text"] + "\n" for d in example["documents"]]
    parts += ["Question: %s\nAnswer: %s\n" % (q["question"], q["answer"]) for q in example["questions"]]
open(sys.argv[1], "w").write("\n".join(parts))
PY

json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

echo "| engine | KV type | KV bytes/token/layer | perplexity | mean KL from F32 | 99th pct KL | same top token |"
echo "|---|---|---:|---:|---:|---:|---:|"
"$frugal" perplexity -m "$model" -t "$threads" -c "$ctx" --chunks "$chunks" -f "$work/text.txt" \
  --cache-type f32 --kl-divergence-base "$work/base.bin" --json > "$work/f32-base.json" 2>/dev/null
for type in $types; do
  "$frugal" perplexity -m "$model" -t "$threads" -c "$ctx" --chunks "$chunks" -f "$work/text.txt" \
    --cache-type "$type" --kl-divergence-base "$work/base.bin" --kl-divergence --json > "$work/$type.json" 2>/dev/null
  bytes=$(python3 -c "print({'f32': 4, 'f16': 2, 'q8_0': 34/32, 'q4_0': 18/32, 'q4_h': 18/32}['$type'] * 2 * 192)")
  json_field "$work/$type.json" \
    "'| frugal | $type | %.0f | %.4f | %.6f | %.6f | %.2f%% |' % ($bytes, d['perplexity'], d['kl_divergence']['mean'], d['kl_divergence']['p99'], 100 * d['kl_divergence']['same_top'])"
done

if [[ -n $peer ]]; then
  pp=$peer/bin/llama-perplexity
  [[ -x $pp ]] || { echo "error: $pp not found" >&2; exit 1; }
  common=(-m "$model" -t "$threads" -c "$ctx" --chunks "$chunks" -f "$work/text.txt" -b "$ctx")
  "$pp" "${common[@]}" -ctk f32 -ctv f32 --kl-divergence-base "$work/peer-base.bin" > "$work/peer-base.log" 2>&1
  for type in f16 q8_0 q4_0; do
    "$pp" "${common[@]}" -fa on -ctk "$type" -ctv "$type" --kl-divergence-base "$work/peer-base.bin" --kl-divergence \
      > "$work/peer-$type.log" 2>&1 || "$pp" "${common[@]}" -fa -ctk "$type" -ctv "$type" \
      --kl-divergence-base "$work/peer-base.bin" --kl-divergence > "$work/peer-$type.log" 2>&1
    python3 - "$work/peer-$type.log" "$type" <<'PY'
import re, sys
log, kind = open(sys.argv[1]).read(), sys.argv[2]
def grab(pattern):
    m = re.search(pattern, log, re.M)
    return float(m.group(1)) if m else float("nan")
ppl = grab(r"Mean PPL\(Q\)\s*:\s*([\d.]+)")
kl = grab(r"Mean\s+KLD:\s*([-\d.]+)")
p99 = grab(r"99\.0%\s+KLD:\s*([-\d.]+)")
top = grab(r"Same top p:\s*([\d.]+)")
size = {"f16": 2, "q8_0": 34 / 32, "q4_0": 18 / 32}[kind] * 2 * 192
print("| llama.cpp | %s | %.0f | %.4f | %.6f | %.6f | %.2f%% |" % (kind, size, ppl, kl, p99, top))
PY
  done
fi

if (( worlds > 0 )); then
  echo
  echo "| KV type | single-hop | two-hop | unanswerable | all |"
  echo "|---|---:|---:|---:|---:|"
  for type in $types; do
    python3 tools/eval_demo_model.py --frugal "$frugal" --model "$model" --threads "$threads" --worlds "$worlds" \
      --cache-type "$type" > "$work/eval-$type.json" 2>/dev/null
    json_field "$work/eval-$type.json" \
      "'| $type | %.3f | %.3f | %.3f | %.3f |' % (d['single']['exact_match'], d['two-hop']['exact_match'], d['unanswerable']['exact_match'], d['all']['exact_match'])"
  done
fi
