#!/usr/bin/env bash
# Beam search with the shared-prefix KV trie against a KV copy per beam, as
# recorded in docs/performance.md: SmolLM2-135M shape, Q8_0, a 256-token
# prompt, 64 new tokens, k = 4, 8, 16.
#   bench/beam_trie_vs_batch.sh [build dir] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
threads="${2:-2}"
model=/tmp/frugal-bench-smollm2-135m-q8_0.gguf
if [[ ! -f $model ]]; then
  "$build/frugal" synth --shape smollm2-135m --type Q8_0 --vocab ../shared/vocab/ggml-vocab-gpt-2.gguf -o "$model"
fi
for k in 4 8 16; do
  echo "## k = $k"
  "$build/frugal" beam -m "$model" -t "$threads" --random-prompt 256 -k "$k" -n 64 --compare | grep -E '^\[|identical'
done
