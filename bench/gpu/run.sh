#!/usr/bin/env bash
# The GPU benchmark in one go (docs/gpu-kernels.md).
#
#   bench/gpu/run.sh publish   on a machine with the .NET SDK: publishes nabla-gpubench self-contained for linux-x64
#                              (one compressed file) into bench/gpu/dist/ with this script and torch_peer.py.
#                              Carry that folder (< 60 MB) to the GPU machine.
#   ./run.sh                   on the GPU machine (no .NET SDK needed; PyTorch with CUDA optional), from dist/ or
#                              bench/gpu/: PyTorch's numbers (torch_peer.py), then ours on CUDA, merged into
#                              results/gpu-bench.json and results/gpu-bench.md. Under 8 minutes (each part is capped).
#   ./run.sh --smoke           the same at tiny sizes on ILGPU's CPU accelerator (PyTorch on the CPU): checks the
#                              script and the binary work, measures nothing.
#   bench/gpu/run.sh smoke     publish, then --smoke: what CI / a helper without a GPU can run.
#
# PYTHON picks the interpreter (default python3); NABLA_BENCH_SECONDS the time per case (default 0.3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
seconds="${NABLA_BENCH_SECONDS:-0.3}"

publish() {
    local repo dist
    repo="$(cd "$here/../.." && pwd)"
    dist="$here/dist"
    rm -rf "$dist"
    dotnet publish "$repo/bench/Nabla.GpuBench/Nabla.GpuBench.csproj" -c Release -r linux-x64 --self-contained true \
        -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:DebugType=none -o "$dist" >/dev/null
    cp "$here/run.sh" "$here/torch_peer.py" "$dist/"
    echo "published $dist: $(du -sh "$dist" | cut -f1) ($(du -sb "$dist" | cut -f1) bytes)"
}

run() {
    local smoke=() device=cuda binary results
    if [[ "${1:-}" == "--smoke" ]]; then smoke=(--smoke); device=ilgpu-cpu; fi
    binary="$here/nabla-gpubench"
    [[ -x "$binary" ]] || binary="$here/dist/nabla-gpubench"
    [[ -x "$binary" ]] || { echo "run.sh: no nabla-gpubench next to this script or in dist/: run 'bench/gpu/run.sh publish' first" >&2; exit 1; }
    results="$here/results"
    mkdir -p "$results"
    local start=$SECONDS
    echo "== PyTorch ($python)"
    if ! timeout 180 "$python" "$here/torch_peer.py" --out "$results/torch.json" --seconds "$seconds" "${smoke[@]}"; then
        echo "run.sh: torch_peer.py failed or ran past 3 minutes; Nabla's numbers only" >&2
        echo '{"available": false, "reason": "torch_peer.py failed"}' > "$results/torch.json"
    fi
    echo "== Nabla"
    timeout 290 "$binary" --device "$device" --out "$results" --peer "$results/torch.json" --seconds "$seconds" "${smoke[@]}"
    echo "== done in $((SECONDS - start)) s: $results/gpu-bench.md"
    cat "$results/gpu-bench.md"
}

case "${1:-}" in
    publish) publish ;;
    smoke) publish; run --smoke ;;
    ""|--smoke) run "${1:-}" ;;
    *) echo "usage: run.sh [publish | smoke | --smoke]" >&2; exit 2 ;;
esac
