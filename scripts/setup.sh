#!/usr/bin/env bash
# Installs frugal's build dependencies from Debian 12 packages, then
# configures and builds a Release build into build/.
#
#   ./scripts/setup.sh            # install + build
#   FRUGAL_SKIP_APT=1 ./scripts/setup.sh   # build only (dependencies present)
#   FRUGAL_BUILD_DIR=build-asan FRUGAL_CMAKE_ARGS="-DFRUGAL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug" ./scripts/setup.sh
set -euo pipefail

cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libpcre2-dev libxxhash-dev libsqlite3-dev libcpp-httplib-dev
  clang   # for the libFuzzer target (optional but installed by default)
  chromium  # renders the OAE report in a test (headless)
  nodejs  # the server is tested with the official `openai` npm package
  curl    # ... and with curl, as the README calls it
  nginx libnginx-mod-http-js prometheus openssl systemd python3  # the scale-out test (deploy/)
  python3-jinja2  # renders the models' own chat templates for the tool-call test
  python3-torch   # PyTorch autograd checks the LoRA trainer's gradients (test lora_torch_reference)
)

if [[ "${FRUGAL_SKIP_APT:-0}" != "1" ]]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# npm: Debian's package, unless the installed Node.js brings its own (NodeSource's
# nodejs contains npm and conflicts with Debian's npm package).
if [[ "${FRUGAL_SKIP_APT:-0}" != "1" ]] && ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends npm
fi
# The client libraries the server is tested with, pinned: the official `openai`
# client (tests/server/openai_js), and the ollama client, LangChain and the AI
# SDK (tests/server/clients_js).
if command -v npm >/dev/null; then
  npm install --prefix tests/server/openai_js --no-audit --no-fund --silent ||
    echo "setup: warning: npm install failed (offline?); the test server_openai_js will fail" >&2
  npm install --prefix tests/server/clients_js --no-audit --no-fund --silent ||
    echo "setup: warning: npm install failed (offline?); the test server_clients_js will fail" >&2
fi

# dockerfile-utils (pinned in deploy/lint/package.json) checks deploy/Containerfile;
# puppeteer-core (pinned in tests/web/package.json) drives Chromium through the web page.
if command -v npm >/dev/null; then
  npm install --prefix deploy/lint --no-audit --no-fund --silent ||
    echo "setup: warning: npm install failed (offline?); the test deploy_scale_out will fail" >&2
  npm install --prefix tests/web --no-audit --no-fund --silent ||
    echo "setup: warning: npm install failed (offline?); the test web_page_chromium will fail" >&2
fi

build_dir="${FRUGAL_BUILD_DIR:-build}"
jobs="${FRUGAL_JOBS:-$(nproc)}"
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${FRUGAL_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs"
echo "setup: built $build_dir/frugal"
