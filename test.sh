#!/usr/bin/env bash
# Runs every test: fetches the real datasets the tests read (once, into ~/.cache/nabla-test-data or
# $NABLA_TEST_DATA), then `dotnet test` in Release (the kernels are slow in Debug). Extra arguments go to
# dotnet test, e.g. ./test.sh --filter FullyQualifiedName~Tokenizer
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for fetch in tests/data/fetch-*.sh; do bash "$fetch"; done
dotnet test -c Release "$@"
