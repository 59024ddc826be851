#!/usr/bin/env bash
# Knowledge cache benchmark (docs/performance.md): load time of a ~4k-token
# knowledge cache and time to first token with the cache against prefilling
# the same prompt from scratch.
#
#   bench/cag_ttft.sh [MODEL] [PARAGRAPHS]
#
# MODEL defaults to a SmolLM2-135M-shape Q8_0 file made with `frugal synth`
# (random weights: timings only). The corpus is the first PARAGRAPHS
# (default 29, about 4.1k tokens with the GPT-2 vocabulary) paragraphs of the
# shared SQuAD article, one document each. CACHE_TYPE=q8_0 (etc.) measures a
# cache of that KV type.
set -euo pipefail
cd "$(dirname "$0")/.."
frugal=${FRUGAL:-build/frugal}
work=${FRUGAL_BENCH_DIR:-/tmp/frugal-cag-bench}
model=${1:-$work/smollm2-q8_0.gguf}
paragraphs=${2:-29}
threads=${THREADS:-2}
cache_type=${CACHE_TYPE:-f32}  # KV type of the cache file (f32, f16, q8_0, q4_0, q4_h)
repeats=${REPEATS:-5}
mkdir -p "$work/docs"

if [[ ! -f $model ]]; then
  "$frugal" synth --shape smollm2-135m --type Q8_0 --vocab ../shared/vocab/ggml-vocab-gpt-2.gguf -o "$model"
fi

# One .txt per paragraph ("context" strings of the SQuAD JSON; \uXXXX and
# \" escapes decoded by printf %b).
rm -f "$work"/docs/*.txt
i=0
while IFS= read -r context && (( i < paragraphs )); do
  printf -v name '%s/docs/p%03d.txt' "$work" "$i"
  printf '%b\n' "${context//\\\"/\"}" > "$name"
  i=$((i + 1))
done < <(grep -oP '"context": "\K(?:[^"\\]|\\.)*' ../shared/data/squad-dev-v1.1-super-bowl-50.json)

"$frugal" kb build -m "$model" -t "$threads" --docs "$work/docs" -o "$work/kb.fkv" -c 8192 --cache-type "$cache_type"
ls -l "$work/kb.fkv"

field() { grep -oP "\"$1\":\K[0-9.]+" <<< "$2"; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

questions=("Which team won Super Bowl 50?" "Where was the game played?" "Who was the MVP?"
           "What color was used to emphasize the 50th anniversary?" "Which network broadcast the game?")
declare -A samples
for ((r = 0; r < repeats; ++r)); do
  q=${questions[$((r % ${#questions[@]}))]}
  for mode in verify no-verify no-cache; do
    args=(ask -m "$model" -t "$threads" --kb "$work/kb.fkv" -n 1 --temp 0 --json --cache-type "$cache_type" "$q")
    [[ $mode == no-verify ]] && args+=(--no-verify)
    [[ $mode == no-cache ]] && args+=(--no-verify --no-cache)
    out=$("$frugal" "${args[@]}" 2>/dev/null)
    samples[$mode-load]+="$(field load_ms "$out") "
    samples[$mode-ttft]+="$(field ttft_ms "$out") "
  done
done
# Questions after the first in one process: the pages of the cache are
# already mapped (what a server or `ask --interactive` sees).
warm=$(printf '%s\n' "${questions[@]}" "${questions[@]}" |
       "$frugal" ask -m "$model" -t "$threads" --kb "$work/kb.fkv" --no-verify -n 1 --temp 0 --json -i \
         --cache-type "$cache_type" 2>/dev/null |
       tail -n +2)
warm_ttft=$(grep -oP '"ttft_ms":\K[0-9.]+' <<< "$warm" | median)

m() { tr ' ' '\n' <<< "${samples[$1]}" | grep . | median; }
tokens=$("$frugal" kb info --no-verify "$work/kb.fkv" | grep -oP 'keys/values: \K[0-9]+')
printf '\nknowledge: %s tokens, %s threads, median of %s runs (ms)\n' "$tokens" "$threads" "$repeats"
printf '%-40s %10s\n' "load, checksum verified" "$(m verify-load)" \
                      "load, checksum skipped" "$(m no-verify-load)" \
                      "TTFT no cache (prefill everything)" "$(m no-cache-ttft)" \
                      "TTFT with cache, first question" "$(m no-verify-ttft)" \
                      "TTFT with cache, later questions" "$warm_ttft"
awk -v a="$(m no-cache-ttft)" -v b="$(m no-verify-ttft)" -v c="$warm_ttft" \
  'BEGIN {printf "speed-up: %.0fx (first question), %.0fx (later questions)\n", a / b, a / c}'
