#!/bin/bash
# Decode speed with a JSON schema against unconstrained decoding, same model,
# same prompt, same threads, back to back (docs/structured-output.md).
#
#   bench/grammar_speed.sh [FRUGAL] [VOCAB] [REPEATS]
#
# Models: the built-in demo model, and a random-weight model of SmolLM2-135M's
# shape (Q8_0) written with VOCAB (default ../shared/vocab/ggml-vocab-gpt-2.gguf).
# Answers are 200 tokens greedy; unconstrained ones with --ignore-eos, so both
# decode the same number of tokens (a schema run that ends earlier is
# reported with its own count).
set -euo pipefail
frugal=${1:-build/frugal}
vocab=${2:-../shared/vocab/ggml-vocab-gpt-2.gguf}
repeats=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$frugal" synth --shape smollm2-135m --type Q8_0 --vocab "$vocab" -o "$work/smollm2.gguf" >/dev/null 2>&1
schema='{"type":"object","properties":{"clinics":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"town":{"type":"string"},"staff":{"type":"integer"}},"required":["name","town","staff"]},"minItems":3}},"required":["clinics"]}'
prompt="Question: List the clinics and their staff as JSON.\nAnswer:"
rate() { sed -n 's/.*generated \([0-9]*\) tokens, \([0-9.]*\) tok\/s.*/\2 \1/p'; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), 2 threads"
echo "| model | unconstrained tok/s | with the JSON schema tok/s (tokens) | ratio |"
echo "|---|---:|---:|---:|"
for model in demo "$work/smollm2.gguf"; do
  args=(-t 2 -p "$prompt" -n 200 --temp 0)
  [ "$model" != demo ] && args+=(-m "$model")
  free=0; constrained=0; tokens=0
  for _ in $(seq "$repeats"); do
    f=$("$frugal" run "${args[@]}" --ignore-eos 2>&1 >/dev/null | rate | cut -d' ' -f1)
    read -r c n < <("$frugal" run "${args[@]}" --json-schema "$schema" 2>&1 >/dev/null | rate)
    free=$(python3 -c "print(max($free, $f))"); constrained=$(python3 -c "print(max($constrained, $c))"); tokens=$n
  done
  name=$([ "$model" == demo ] && echo "demo model (Q8_0, 9.7 M)" || echo "SmolLM2-135M shape (Q8_0, random weights)")
  echo "| $name | $free | $constrained ($tokens) | $(python3 -c "print(f'{$constrained / $free:.2f}')") |"
done
