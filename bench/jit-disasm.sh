#!/usr/bin/env bash
# Shows what the JIT emitted for the kernels a benchmark runs: per optimised method matching PATTERN, the number of
# FMAs and of vector register-to-register copies (vmovaps between registers) in the whole method. A register tile
# should have none in its loop (docs/optimization-log.md, conv 9: the copies `acc = V.Fma(a, b, acc)` produced);
# the listing shows where any are.
#   bench/jit-disasm.sh "*Tile*" conv --rounds 1 --no-torch --only "ResNet-18 layer1"
#   bench/jit-disasm.sh "*VectorTile:Run" conv --rounds 1 --no-torch --only "ResNet-20 stage 3"
# The full listings stay in $JIT_LISTING (default /tmp/nabla-jit-listing.txt). Needs a Release build of bench/Nabla.Bench.
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 PATTERN BENCH-ARGS..." >&2; exit 2; fi
pattern=$1; shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bench=bench/Nabla.Bench/bin/Release/net10.0/linux-x64/Nabla.Bench.dll
[ -f "$bench" ] || { echo "build it first: dotnet build -c Release bench/Nabla.Bench" >&2; exit 1; }
listing=${JIT_LISTING:-/tmp/nabla-jit-listing.txt}
rm -f "$listing"
DOTNET_JitDisasm="$pattern" DOTNET_JitStdOutFile="$listing" dotnet "$bench" "$@" > /dev/null
[ -f "$listing" ] || { echo "nothing matched '$pattern' in optimised code" >&2; exit 1; }
awk '/; Assembly listing for method/ { name = $0; sub(/; Assembly listing for method /, "", name); opt = (name ~ /\((Tier1|Tier1-OSR|FullOpts)\)$/) }
     opt && /vfmadd/ { fma[name]++; seen[name] = 1 }
     opt && /vmovaps +[xyz]mm[0-9]+, [xyz]mm[0-9]+$/ { copies[name]++; seen[name] = 1 }
     END { for (n in seen) printf "%5d FMAs %4d register copies  %s\n", fma[n], copies[n], n }' "$listing" | sort -k5
