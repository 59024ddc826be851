#!/usr/bin/env bash
# What merging key/value heads costs in quality (docs/retrofit.md): the demo
# QA model (6 KV heads) retrofitted to KV_HEADS (default 3) by the mean
# baseline and by the aligned merge, then
#  1. KL divergence of next-token distributions from the original model and
#     top-token agreement (`frugal perplexity`) over a text of test-split
#     worlds;
#  2. exact match per question kind over tools/eval_demo_model.py's
#     evaluation worlds (WORLDS=30; 0 skips).
# The aligned merge calibrates on TRAINING-split worlds (names the
# evaluation never uses), so nothing is tuned on what is measured.
#
#   bench/retrofit_quality.sh
set -euo pipefail
cd "$(dirname "$0")/.."
frugal=${FRUGAL:-build/frugal}
model=${MODEL:-models/frugal-demo-qa-q8_0.gguf}
kv_heads=${KV_HEADS:-3}
worlds=${WORLDS:-30}
threads=${THREADS:-2}
work=${WORK:-/tmp/frugal-retrofit}
mkdir -p "$work"

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); model: $model; date: $(date -u +%Y-%m-%d)"
# Calibration (train split) and measurement (test split) texts.
python3 - "$work" <<'PY'
import os, random, sys
sys.path.insert(0, os.path.join("tools", "demo"))
from world import Pools, make_example
for split, seed, n, name in (("train", "retrofit-calibration", 6, "calibration.txt"), ("test", "kv-quality", 40, "text.txt")):
    rng, pools, parts = random.Random(seed), Pools(split), []
    for _ in range(n):
        example = make_example(rng, pools, rng.randint(20, 30))
        parts += [d["title"] + "\n" + d["text"] + "\n" for d in example["documents"]]
        parts += ["Question: %s\nAnswer: %s\n" % (q["question"], q["answer"]) for q in example["questions"]]
    open(os.path.join(sys.argv[1], name), "w").write("\n".join(parts))
PY
"$frugal" retrofit "$model" "$work/mean.gguf" --kv-heads "$kv_heads" --merge mean -t "$threads"
"$frugal" retrofit "$model" "$work/aligned.gguf" --kv-heads "$kv_heads" --merge aligned \
  --calibration "$work/calibration.txt" -t "$threads"

json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
ppl=(-t "$threads" -c 512 --cache-type f32 --chunks 16 -f "$work/text.txt" --kl-divergence-base "$work/base.bin" --json)
"$frugal" perplexity -m "$model" "${ppl[@]}" > "$work/original.json" 2>/dev/null
echo
echo "| model | KV heads | KV bytes/token (F32) | perplexity | mean KL from the original | same top token |"
echo "|---|---:|---:|---:|---:|---:|"
for variant in original mean aligned; do
  file=$model; heads=6
  if [[ $variant != original ]]; then file=$work/$variant.gguf; heads=$kv_heads; fi
  "$frugal" perplexity -m "$file" "${ppl[@]}" --kl-divergence > "$work/$variant.json" 2>/dev/null
  json_field "$work/$variant.json" \
    "'| $variant | $heads | %d | %.2f | %.4f | %.2f%% |' % (2 * 8 * $heads * 32 * 4, d['perplexity'], d['kl_divergence']['mean'], 100 * d['kl_divergence']['same_top'])"
done
if (( worlds > 0 )); then
  echo
  echo "| model | single-hop | two-hop | unanswerable | all |"
  echo "|---|---:|---:|---:|---:|"
  for variant in original mean aligned; do
    file=$model
    [[ $variant != original ]] && file=$work/$variant.gguf
    python3 tools/eval_demo_model.py --frugal "$frugal" --model "$file" --threads "$threads" --worlds "$worlds" \
      > "$work/eval-$variant.json" 2>/dev/null
    json_field "$work/eval-$variant.json" \
      "'| $variant | %.3f | %.3f | %.3f | %.3f |' % (d['single']['exact_match'], d['two-hop']['exact_match'], d['unanswerable']['exact_match'], d['all']['exact_match'])"
  done
fi
