#!/usr/bin/env bash
# Scale-out test (ctest label `deploy`, docs/deploy.md): three `frugal serve`
# instances sharing one knowledge folder behind nginx configured from
# deploy/nginx (ports and paths rewritten for a temporary prefix), with
# Prometheus scraping them from deploy/prometheus. Everything runs as the
# test's user on 127.0.0.1 and stops by itself.
#
#   tests/deploy/scale_out_test.sh FRUGAL SOURCE_DIR
#
# Checks: every knowledge cache is answered by one instance only (each
# instance's /metrics); TLS and streaming through nginx; killing the
# instance that holds a cache moves it to another within 2 s, and only
# requests in flight on the killed instance fail; a restarted instance gets
# its caches back; Prometheus scrapes all three; promtool accepts the rules;
# systemd-analyze accepts the unit; the Containerfile lints clean. Prints a load comparison (nginx against
# one instance direct).
set -euo pipefail
frugal=$(realpath "$1")
source_dir=$(realpath "$2")
deploy="$source_dir/deploy"
model="$source_dir/models/frugal-demo-qa-q8_0.gguf"
work=$(mktemp -d /tmp/frugal-deploy-test.XXXXXX)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f $work/nginx/nginx.pid ]] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/*.log "$work"/nginx/error.log; do
    [[ -f $log ]] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
}
now() { python3 -c 'import time; print(time.monotonic())'; }

for tool in nginx prometheus promtool openssl curl python3 systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/setup.sh installs it)"
done
js_module=""
for candidate in /usr/lib/nginx/modules/ngx_http_js_module.so /usr/share/nginx/modules/ngx_http_js_module.so; do
  [[ -f $candidate ]] && js_module=$candidate && break
done
[[ -n $js_module ]] || fail "nginx's js module is missing (Debian: libnginx-mod-http-js)"

read -r p1 p2 p3 http_port tls_port prom_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
ports=("$p1" "$p2" "$p3")

# ---- Knowledge caches in one shared folder: six names, one instance each.
mkdir -p "$work/kb"
"$frugal" kb build -m "$model" --docs "$source_dir/examples/town" -o "$work/kb/town.fkv" >/dev/null 2>&1 ||
  fail "kb build"
caches=(town clinic school library market harbour)
for name in "${caches[@]:1}"; do cp "$work/kb/town.fkv" "$work/kb/$name.fkv"; done
models=$(printf 'frugal-demo-qa-q8_0@%s,' "${caches[@]}")
models=${models%,}

start_instance() {  # index
  local i=$1
  "$frugal" serve -m "$model" --port "${ports[$i]}" --kb-dir "$work/kb" --parallel 4 --queue 64 \
    --max-client-connections 512 >"$work/instance$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:${ports[$i]}/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "instance $i did not start"
}
for i in 0 1 2; do start_instance "$i"; done

# ---- nginx from deploy/nginx, in a prefix of its own.
mkdir -p "$work/nginx/tmp"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -keyout "$work/nginx/tls.key" \
  -out "$work/nginx/tls.crt" >/dev/null 2>&1 || fail "openssl could not make a certificate"
cp "$deploy/nginx/frugal-routing.js" "$work/nginx/"
sed -e "s#127.0.0.1:8081#127.0.0.1:$p1#; s#127.0.0.1:8082#127.0.0.1:$p2#; s#127.0.0.1:8083#127.0.0.1:$p3#" \
    -e "s#fail_timeout=10s#fail_timeout=2s#" "$deploy/nginx/frugal-upstreams.conf" >"$work/nginx/frugal-upstreams.conf"
sed -e "s#/etc/nginx/frugal/#$work/nginx/#g" -e "s#listen 80;#listen 127.0.0.1:$http_port;#" \
    -e "s#listen 443 ssl;#listen 127.0.0.1:$tls_port ssl;#" "$deploy/nginx/frugal-site.conf" >"$work/nginx/frugal-site.conf"
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"  # workers keep the test's user, who owns the prefix
cat >"$work/nginx/nginx.conf" <<EOF
load_module $js_module;
$user_line
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  include $work/nginx/frugal-site.conf;
}
EOF
nginx -t -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx-check.log" 2>&1 || fail "nginx -t: $(cat "$work/nginx-check.log")"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" || fail "nginx did not start"
front="http://127.0.0.1:$http_port"
for _ in $(seq 50); do curl -fsS "$front/health" >/dev/null 2>&1 && break; sleep 0.1; done

ask() {  # URL MODEL [curl options]
  local url=$1 name=$2
  shift 2
  curl -fsS "$@" "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$name\", \"max_tokens\": 8, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"Who directs the Harlow Clinic?\"}]}"
}
requests_of() {  # PORT CACHE -> that instance's answers over the cache
  curl -fsS "http://127.0.0.1:$1/metrics" |
    awk -v key="frugal_knowledge_requests_total{knowledge=\"$2\"}" '$1 == key {print $2; found = 1} END {if (!found) print 0}'
}

# ---- Through nginx: models listed, answers right, TLS, streaming unbuffered.
listed=$(curl -fsS "$front/v1/models")
for name in "${caches[@]}"; do
  grep -q "frugal-demo-qa-q8_0@$name" <<<"$listed" || fail "/v1/models through nginx lacks $name: $listed"
done
answer=$(ask "$front" "frugal-demo-qa-q8_0@town") || fail "a knowledge request through nginx failed"
grep -q "Dr. Mira Osei" <<<"$answer" || fail "unexpected answer through nginx: $answer"
answer=$(ask "https://127.0.0.1:$tls_port" "frugal-demo-qa-q8_0@clinic" --cacert "$work/nginx/tls.crt") ||
  fail "a request over TLS failed"
grep -q "Dr. Mira Osei" <<<"$answer" || fail "unexpected answer over TLS: $answer"
python3 - "$front" <<'EOF' || fail "streaming through nginx is buffered"
import http.client, json, sys, time
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
body = json.dumps({"model": "frugal-demo-qa-q8_0", "max_tokens": 300, "temperature": 0, "stream": True,
                   "messages": [{"role": "user", "content": "Write a long story about the sea."}]})
start = time.monotonic()
c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
r = c.getresponse()
first = r.read1(65536)
first_at = time.monotonic() - start
rest = r.read()
total = time.monotonic() - start
events = (first + rest).count(b"data: ")
print(f"stream: first bytes after {first_at:.3f} s of {total:.3f} s, {events} events")
sys.exit(0 if events > 10 and first_at < total / 2 else 1)
EOF

# ---- Affinity: each cache answered by exactly one instance.
for round in 1 2 3; do
  for name in "${caches[@]}"; do ask "$front" "frugal-demo-qa-q8_0@$name" >/dev/null || fail "request for $name"; done
done
declare -A owner
for name in "${caches[@]}"; do
  holders=0
  for i in 0 1 2; do
    n=$(requests_of "${ports[$i]}" "$name")
    if [[ $n != 0 ]]; then holders=$((holders + 1)); owner[$name]=$i; fi
  done
  [[ $holders == 1 ]] || fail "cache $name was answered by $holders instances"
done
echo "owners: $(for name in "${caches[@]}"; do printf '%s=%s ' "$name" "${owner[$name]}"; done)"
spread=$(printf '%s\n' "${owner[@]}" | sort -u | wc -l)
[[ $spread -ge 2 ]] || fail "all caches went to one instance"

# ---- Kill the instance that holds `town` mid-load, then restart it.
victim=${owner[town]}
python3 "$source_dir/tests/deploy/load.py" "$front" --models "$models" --clients 6 --seconds 14 \
  --records "$work/records.jsonl" >"$work/load-kill.json" &
load_pid=$!
sleep 4
kill_at=$(now)
kill -9 "${pids[$victim]}"
wait "${pids[$victim]}" 2>/dev/null || true
sleep 4
restart_at=$(now)
start_instance "$victim"
wait "$load_pid" || fail "the load run failed"
echo "load while killing instance $victim: $(cat "$work/load-kill.json")"
python3 - "$work/records.jsonl" "$kill_at" "$restart_at" <<'EOF' || fail "requests failed beyond those in flight, or town was not moved"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
kill_at, restart_at = float(sys.argv[2]), float(sys.argv[3])
bad = [r for r in records if r["status"] != 200 and not (r["start"] <= kill_at + 0.2 and r["end"] >= kill_at)]
in_flight = [r for r in records if r["status"] != 200 and r not in bad]
print(f"{len(records)} requests; failed in flight at the kill: {len(in_flight)}; other failures: {len(bad)}")
for r in bad[:5]:
    print("  unexpected failure:", r)
town = [r for r in records if r["model"].endswith("@town") and r["status"] == 200 and r["start"] > kill_at]
moved = min((r["end"] for r in town), default=None)
print("town answered again %.2f s after the kill" % (moved - kill_at) if moved else "town not answered after the kill")
wrong = [r for r in records if r["status"] == 200 and "Mira Osei" not in r["answer"]]
print(f"wrong answers: {len(wrong)}")
sys.exit(0 if not bad and moved is not None and moved - kill_at < 2.0 and not wrong else 1)
EOF
# The restarted instance gets `town` back once nginx tries it again (fail_timeout).
back=0
for _ in $(seq 40); do
  ask "$front" "frugal-demo-qa-q8_0@town" >/dev/null || true
  if [[ $(requests_of "${ports[$victim]}" town) != 0 ]]; then back=1; break; fi
  sleep 0.25
done
[[ $back == 1 ]] || fail "the restarted instance never got town back"
echo "instance $victim answers town again after its restart"

# ---- Load: through nginx against one instance direct.
echo "through nginx (3 instances): $(python3 "$source_dir/tests/deploy/load.py" "$front" --models "$models" --clients 8 --seconds 5)"
echo "one instance direct:          $(python3 "$source_dir/tests/deploy/load.py" "http://127.0.0.1:$p1" --models "$models" --clients 8 --seconds 5)"

# ---- Prometheus: the rules and config check, and it scrapes all three.
mkdir -p "$work/prometheus"
cp "$deploy/prometheus/frugal-alerts.yml" "$work/prometheus/"
sed -e "s#\"127.0.0.1:8081\", \"127.0.0.1:8082\", \"127.0.0.1:8083\"#\"127.0.0.1:$p1\", \"127.0.0.1:$p2\", \"127.0.0.1:$p3\"#" \
    -e "s#scrape_interval: 15s#scrape_interval: 1s#" "$deploy/prometheus/prometheus.yml" >"$work/prometheus/prometheus.yml"
promtool check rules "$work/prometheus/frugal-alerts.yml" >"$work/promtool.log" 2>&1 || fail "promtool check rules: $(cat "$work/promtool.log")"
promtool check config "$work/prometheus/prometheus.yml" >>"$work/promtool.log" 2>&1 || fail "promtool check config: $(cat "$work/promtool.log")"
prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
scraped=0
for _ in $(seq 60); do
  up=$(curl -fsS "http://127.0.0.1:$prom_port/api/v1/query?query=sum(up%7Bjob%3D%22frugal%22%7D)" 2>/dev/null || true)
  if grep -q '"value":\[[0-9.]*,"3"\]' <<<"$up"; then scraped=1; break; fi
  sleep 0.5
done
[[ $scraped == 1 ]] || fail "Prometheus does not see three instances up: ${up:-no answer}"
echo "Prometheus scrapes 3 instances; promtool accepts the rules"

# ---- systemd: the unit as shipped, with this build's binary.
mkdir -p "$work/systemd"
sed -e "s#/usr/local/bin/frugal#$frugal#" -e "s#EnvironmentFile=/etc/frugal/%i.env#EnvironmentFile=-$work/systemd/%i.env#" \
  "$deploy/systemd/frugal@.service" >"$work/systemd/frugal@.service"
verify=$(cd "$work/systemd" && systemd-analyze verify --man=no ./frugal@1.service 2>&1) || true
[[ -z $verify ]] || fail "systemd-analyze verify: $verify"
echo "systemd-analyze verify: no complaints"

# ---- The Containerfile, linted (no container runtime is needed).
lint="$source_dir/deploy/lint/node_modules/.bin/dockerfile-utils"
[[ -x $lint ]] || fail "dockerfile-utils is not installed (scripts/setup.sh: npm install --prefix deploy/lint)"
problems=$("$lint" lint "$deploy/Containerfile" 2>&1) || fail "deploy/Containerfile: $problems"
echo "deploy/Containerfile: no lint errors"
echo "scale-out test passed"
