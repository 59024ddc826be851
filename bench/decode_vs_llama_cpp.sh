#!/usr/bin/env bash
# frugal against llama.cpp (built from source: ../shared/peer) on the same
# files, threads and machine, back to back: prefill (pp512) and decode
# (tg128) with 1 and 2 threads, and decode at depth 4096. Prints the CPU and
# a markdown table with the ratios (docs/performance.md).
#
#   bench/decode_vs_llama_cpp.sh [PEER_DIR] [BUILD_DIR]
#
# Environment: THREADS="1 2", REPS=3, DEPTH=4096 (0: skip the depth test),
# FILES="smollm2-135m:Q8_0 smollm2-135m:Q4_0 qwen2.5-0.5b:Q8_0 qwen2.5-0.5b:Q4_K_M",
# WORK=/tmp/frugal-decode-bench (where the synthetic models are kept),
# VOCAB=../shared/vocab/ggml-vocab-gpt-2.gguf (the vocabulary the models get).
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${1:-../shared/peer}
build=${2:-build}
threads=${THREADS:-"1 2"}
reps=${REPS:-3}
depth=${DEPTH:-4096}
files=${FILES:-"smollm2-135m:Q8_0 smollm2-135m:Q4_0 qwen2.5-0.5b:Q8_0 qwen2.5-0.5b:Q4_K_M"}
work=${WORK:-/tmp/frugal-decode-bench}
vocab=${VOCAB:-../shared/vocab/ggml-vocab-gpt-2.gguf}
mkdir -p "$work"

for tool in "$peer/bin/llama-bench" "$build/frugal"; do
  [[ -x $tool ]] || { echo "error: $tool not found (give the peer's folder and the build folder)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "error: python3 is needed to read the JSON results" >&2; exit 1; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs;" \
     "family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "model $(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); llama.cpp $("$peer/bin/llama-cli" --version 2>&1 | grep -m1 '^version' || true)"
echo

# tokens/s of test NAME (pp512, tg128) from llama-bench's or frugal's JSON.
rate() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
text, want = open(sys.argv[1]).read(), sys.argv[2]
data = json.loads(text)
rows = data if isinstance(data, list) else data["tests"]
for r in rows:
    name = r.get("test") or ("pp%d" % r["n_prompt"] if r["n_gen"] == 0 else "tg%d" % r["n_gen"])
    if name == want:
        print("%.1f" % r["avg_ts"]); break
else:
    print("nan")
EOF
}
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('%.2f' % (a / b) if b else 'nan')" "$1" "$2"; }

echo "| file | threads | llama.cpp pp512 | frugal pp512 | ratio | llama.cpp tg128 | frugal tg128 | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for spec in $files; do
  shape=${spec%%:*}
  type=${spec#*:}
  model="$work/$shape-$type.gguf"
  [[ -f $model ]] || "$build/frugal" synth --shape "$shape" --type "$type" --vocab "$vocab" -o "$model" >/dev/null 2>&1
  for t in $threads; do
    "$peer/bin/llama-bench" -m "$model" -t "$t" -p 512 -n 128 -r "$reps" -o json > "$work/peer.json" 2>/dev/null
    "$build/frugal" bench -m "$model" -t "$t" -p 512 -n 128 -r "$reps" --json > "$work/frugal.json" 2>/dev/null
    pp_peer=$(rate "$work/peer.json" pp512); pp_ours=$(rate "$work/frugal.json" pp512)
    tg_peer=$(rate "$work/peer.json" tg128); tg_ours=$(rate "$work/frugal.json" tg128)
    echo "| $shape $type | $t | $pp_peer | $pp_ours | $(ratio "$pp_ours" "$pp_peer") | $tg_peer | $tg_ours | $(ratio "$tg_ours" "$tg_peer") |"
  done
done

if (( depth > 0 )); then
  echo
  echo "Decode at depth $depth (128 tokens after a $depth-token context; llama.cpp's default F16 cache," \
       "frugal's default F16 cache and its F32 cache):"
  echo
  echo "| file | threads | llama.cpp tg128 @ d$depth | frugal F16 (default) | ratio | frugal F32 | ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  spec=${files%% *}
  shape=${spec%%:*}
  type=${spec#*:}
  model="$work/$shape-$type.gguf"
  for t in $threads; do
    # llama-batched-bench prints a table: PP TG B N_KV T_PP S_PP T_TG S_TG ...; S_TG is decode tokens/s.
    tg_peer=$("$peer/bin/llama-batched-bench" -m "$model" -c $((depth + 256)) -npp "$depth" -ntg 128 -npl 1 -t "$t" \
               2>/dev/null | awk -F'|' '/^\|[ ]*[0-9]/ {gsub(/ /, "", $9); print $9; exit}')
    "$build/frugal" bench -m "$model" -t "$t" -p 0 -n 128 -d "$depth" -r "$reps" --json > "$work/frugal.json" 2>/dev/null
    tg_ours=$(rate "$work/frugal.json" tg128)
    "$build/frugal" bench -m "$model" -t "$t" -p 0 -n 128 -d "$depth" -r "$reps" --cache-type f32 --json \
      > "$work/frugal32.json" 2>/dev/null
    tg_ours32=$(rate "$work/frugal32.json" tg128)
    echo "| $shape $type | $t | $tg_peer | $tg_ours | $(ratio "$tg_ours" "$tg_peer") | $tg_ours32 |" \
         "$(ratio "$tg_ours32" "$tg_peer") |"
  done
fi
