#!/usr/bin/env bash
# BERT embeddings: frugal against llama.cpp's llama-embedding (../shared/peer)
# on random-weight BERT files written by `frugal synth --arch bert` with the
# BGE WordPiece vocabulary, in F32, F16 and Q8_0. Prints, per file and text,
# the cosine of the two vectors and their largest difference.
#   bench/embedding_vs_llama_cpp.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
shared=$(cd "$(dirname "$0")/../../shared" && pwd)
peer=$shared/peer/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
texts=("The clinic opens at 9." "Who leads the Fenwick Water Office?" "Rain, then sun; 21 degrees in Oslo.")
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for type in F32 F16 Q8_0; do
  model=$work/bert-$type.gguf
  "$build/frugal" synth --arch bert --vocab "$shared/vocab/ggml-vocab-bert-bge.gguf" --type "$type" \
    --embedding 128 --layers 3 --heads 4 --ffn 512 --context 256 -s 11 -o "$model" > /dev/null
  for text in "${texts[@]}"; do
    ours=$("$build/frugal" embed -m "$model" -t 2 -p "$text" --json)
    theirs=$(LD_LIBRARY_PATH=$peer "$peer/llama-embedding" -m "$model" -t 2 -c 256 -b 256 -ub 256 -p "$text" \
      --embd-output-format json 2>/dev/null)
    python3 - "$type" "$text" "$ours" "$theirs" <<'PY'
import json, math, sys
kind, text, ours, theirs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])[0], json.loads(sys.argv[4])["data"][0]["embedding"]
dot = sum(a * b for a, b in zip(ours, theirs))
cosine = dot / math.sqrt(sum(a * a for a in ours) * sum(b * b for b in theirs))
print(f"{kind:5} cosine {cosine:.7f}  max |diff| {max(abs(a - b) for a, b in zip(ours, theirs)):.2e}  {text}")
PY
  done
done
