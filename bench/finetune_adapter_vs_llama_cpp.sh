#!/usr/bin/env bash
# An adapter written by `frugal finetune`, read by llama.cpp: trains one on
# prompt/completion records, then prints the greedy continuation of each
# prompt by llama-cli --lora and by frugal run --lora, and whether they agree
# (and whether the adapter changed the base model's continuation).
#
#   bench/finetune_adapter_vs_llama_cpp.sh PEER_BIN_DIR [MODEL] [DATA.jsonl]
#
# PEER_BIN_DIR: llama.cpp's binaries (../shared/peer/bin). Defaults: the demo
# model and examples/finetune/door-mottos.jsonl.
set -euo pipefail
peer=${1:?usage: $0 PEER_BIN_DIR [MODEL] [DATA.jsonl]}
root=$(cd "$(dirname "$0")/.." && pwd)
model=${2:-$root/models/frugal-demo-qa-q8_0.gguf}
data=${3:-$root/examples/finetune/door-mottos.jsonl}
frugal=$root/build/frugal
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$frugal" finetune -m "$model" --data "$data" -o "$work/adapter.gguf" --epochs 30 --batch 4 --lr 3e-3 \
  --validation 0 -q 2>&1 | tail -n 3
agree=0 total=0 changed=0
while IFS= read -r line; do
  prompt=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["prompt"])' "$line")
  peer_text=$("$peer/llama-cli" -m "$model" --lora "$work/adapter.gguf" -p "$prompt" -n 12 --temp 0 -no-cnv \
    --no-warmup -t 2 2>/dev/null | sed -e 's/ \[end of text\]$//' -e 's/^ *//')
  peer_text=${peer_text#"$prompt"}  # llama-cli prints the prompt first
  ours=$("$frugal" run -m "$model" --lora "$work/adapter.gguf" -p "$prompt" -n 12 --temp 0 2>/dev/null)
  base=$("$frugal" run -m "$model" -p "$prompt" -n 12 --temp 0 2>/dev/null)
  total=$((total + 1))
  [[ "$(echo "$peer_text" | xargs)" == "$(echo "$ours" | xargs)" ]] && agree=$((agree + 1)) && verdict=same || verdict=DIFFERENT
  [[ "$base" != "$ours" ]] && changed=$((changed + 1))
  printf '%-40s llama.cpp: %-20s frugal: %-20s %s\n' "$prompt" "$(echo "$peer_text" | xargs)" "$(echo "$ours" | xargs)" "$verdict"
done < "$data"
echo "agree on $agree of $total prompts; the adapter changed the base model's continuation on $changed"
[[ $agree -eq $total ]]
