#!/usr/bin/env bash
# Refreshes the two libraries the page uses, pinned, from the npm registry:
# marked (Markdown to HTML) and DOMPurify (makes that HTML safe). Their
# files are committed, so building frugal needs no network.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm install --prefix "$work" --no-audit --no-fund --silent marked@18.3.0 dompurify@3.5.0
cp "$work/node_modules/marked/lib/marked.umd.js" marked.umd.js
cp "$work/node_modules/marked/LICENSE" LICENSE-marked
cp "$work/node_modules/dompurify/dist/purify.min.js" purify.min.js
cp "$work/node_modules/dompurify/LICENSE" LICENSE-dompurify
