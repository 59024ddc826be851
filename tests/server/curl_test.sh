#!/usr/bin/env bash
# The server driven by curl, as the README calls it: the built-in demo model
# and a knowledge cache of examples/town on a free loopback port; a
# non-streamed and a streamed answer over the cache, the model list, and
# OpenAI-style errors.
#
#   tests/server/curl_test.sh FRUGAL EXAMPLES_TOWN
set -euo pipefail
frugal=$1
docs=$2
work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- server log:" >&2
  cat "$work/log" >&2
  exit 1
}

"$frugal" kb build -q -t 2 --docs "$docs" -o "$work/town.fkv"
"$frugal" serve -t 2 --kb town="$work/town.fkv" --port 0 --api-key secret --name demo 2> "$work/log" &
pid=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's|.*serving on http://127\.0\.0\.1:\([0-9]*\)/v1.*|\1|p' "$work/log")
  [[ -n "$port" ]] && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited"
  sleep 0.1
done
[[ -n "$port" ]] || fail "no port announced"
url="http://127.0.0.1:$port/v1"
auth=(-H "Authorization: Bearer secret" -H "Content-Type: application/json")

models=$(curl -sS "${auth[@]}" "$url/models")
grep -q '"id":"demo@town"' <<< "$models" || fail "models: $models"

question='{"model":"demo@town","temperature":0,"messages":[{"role":"user","content":"Who directs the Harlow Clinic?"}]'
answer=$(curl -sS "${auth[@]}" "$url/chat/completions" -d "$question}")
grep -q '"content":"Dr. Mira Osei"' <<< "$answer" || fail "answer: $answer"
grep -q '"finish_reason":"stop"' <<< "$answer" || fail "finish reason: $answer"
grep -q '"cached_tokens":341' <<< "$answer" || fail "cached tokens: $answer"

stream=$(curl -sSN "${auth[@]}" "$url/chat/completions" -d "$question,\"stream\":true}")
[[ $(grep -c '^data: {' <<< "$stream") -ge 3 ]] || fail "stream chunks: $stream"
tail -n 2 <<< "$stream" | grep -q '^data: \[DONE\]' || fail "stream end: $stream"
text=$(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' <<< "$stream" | tr -d '\n')
[[ "$text" == "Dr. Mira Osei" ]] || fail "streamed text '$text'"

status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[[ $(status "$url/models") == 401 ]] || fail "no key should be 401"
[[ $(status "${auth[@]}" "$url/chat/completions" -d '{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}') == 404 ]] ||
  fail "unknown model should be 404"
[[ $(status "${auth[@]}" "$url/chat/completions" -d '{not json') == 400 ]] || fail "bad JSON should be 400"
# SIGTERM stops it cleanly.
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[[ $rc == 0 ]] || fail "the server exited with $rc on SIGTERM"
grep -q "stopping (signal 15)" "$work/log" || fail "no shutdown message"
echo "curl test passed (port $port)"
