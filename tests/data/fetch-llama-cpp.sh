#!/usr/bin/env bash
# Installs llama.cpp's prebuilt CPU library, as npm's node-llama-cpp 3.21.1 ships it, into the test-data cache:
#   $NABLA_TEST_DATA (default: $HOME/.cache/nabla-test-data)/node-llama-cpp/node_modules/...
# bench/llama_cpp_peer.mjs loads it from there: tests/Nabla.Tests/IO/GgufLlamaCppTests.cs runs a GGUF written by
# Nabla in llama.cpp, and `nabla bench generate` uses it as the llama.cpp peer. Only the linux-x64 CPU binaries
# are installed (83 MB; the CUDA and Vulkan builds the package lists as optional would add 600 MB).
# Idempotent; needs node and npm.
set -euo pipefail
DATA_DIR="${NABLA_TEST_DATA:-${HOME:?set HOME or NABLA_TEST_DATA}/.cache/nabla-test-data}"
DIR="$DATA_DIR/node-llama-cpp"
VERSION=3.21.1
if [ -f "$DIR/node_modules/node-llama-cpp/package.json" ] && grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/node-llama-cpp/package.json" \
   && [ -d "$DIR/node_modules/@node-llama-cpp/linux-x64" ]; then
  echo "node-llama-cpp $VERSION: present"
  exit 0
fi
rm -rf "$DIR.tmp"
mkdir -p "$DIR.tmp"
echo '{"private": true}' > "$DIR.tmp/package.json"
(cd "$DIR.tmp" && npm install --silent -E --omit=optional --no-audit --no-fund "node-llama-cpp@$VERSION" "@node-llama-cpp/linux-x64@$VERSION")
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
echo "node-llama-cpp $VERSION: installed in $DIR"
