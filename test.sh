#!/usr/bin/env bash
# Runs every test: fetches the real datasets the tests read (once, into ~/.cache/nabla-test-data or
# $NABLA_TEST_DATA), then builds the solution and runs `dotnet test` in Release (the kernels are slow in Debug). Extra arguments go to
# dotnet test, e.g. ./test.sh --filter FullyQualifiedName~Tokenizer
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for fetch in tests/data/fetch-*.sh; do bash "$fetch"; done
# Build everything first (examples and benchmarks too: they must keep compiling), then test.
dotnet build -c Release Nabla.slnx
dotnet test -c Release --no-build Nabla.slnx "$@"
