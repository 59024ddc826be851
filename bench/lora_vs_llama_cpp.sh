#!/bin/bash
# Greedy text of frugal and llama.cpp with the same random LoRA adapter on
# the same base model: how many leading tokens agree (docs/lora.md).
#
#   bench/lora_vs_llama_cpp.sh PEER_DIR [FRUGAL] [SHARED_MODELS_DIR]
#
# PEER_DIR holds llama.cpp's bin/llama-cli (../shared/peer). Adapters are
# written by tools/random_lora.py into a temporary folder.
set -euo pipefail
peer=${1:?usage: $0 PEER_DIR [FRUGAL] [MODELS_DIR]}
frugal=${2:-build/frugal}
models=${3:-../shared/models}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prompt="The capital of France is"
echo "| base | adapter | frugal = llama.cpp (greedy, 24 tokens) | without the adapter |"
echo "|---|---|---|---|"
for case in "tiny-llama-spm.gguf attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down 0.2" \
            "mini-llama-spm-q8_0.gguf attn_q,attn_v,ffn_down 0.1"; do
  read -r model targets std <<<"$case"
  python3 tools/random_lora.py "$models/$model" "$work/adapter.gguf" --targets "$targets" --scale-std "$std" 2>/dev/null
  ours=$("$frugal" run -m "$models/$model" --lora "$work/adapter.gguf" -p "$prompt" -n 24 --temp 0 -t 2 -q)
  theirs=$("$peer/bin/llama-cli" -m "$models/$model" --lora "$work/adapter.gguf" -p "$prompt" -n 24 --temp 0 \
           -t 2 -no-cnv 2>/dev/null)
  base=$("$frugal" run -m "$models/$model" -p "$prompt" -n 24 --temp 0 -t 2 -q)
  # llama-cli echoes the prompt (with SentencePiece's leading space); frugal prints the continuation only.
  same=$(python3 - "$prompt" "$ours" "$theirs" <<'PY'
import os, sys
prompt, ours, theirs = sys.argv[1], sys.argv[2].rstrip(), sys.argv[3].lstrip().rstrip()
theirs = theirs[len(prompt):] if theirs.startswith(prompt) else theirs
print("identical" if ours == theirs else f"differ after {len(os.path.commonprefix([ours, theirs]))} of {len(ours)} characters")
PY
)
  changed=$([ "$ours" == "$base" ] && echo "same text (adapter had no effect!)" || echo "other text")
  echo "| $model | rank 4 on $targets | $same | $changed |"
done
