#!/usr/bin/env bash
# The GPU benchmark in one go (docs/gpu-kernels.md).
#
#   bench/gpu/run.sh publish   on a machine with the .NET SDK: publishes nabla-gpubench self-contained for linux-x64
#                              (one compressed file) into bench/gpu/dist/ with this script, torch_peer.py and
#                              gpt2_model.py. Carry that folder (< 60 MB) to the GPU machine.
#   ./run.sh                   on the GPU machine (no .NET SDK needed; PyTorch with CUDA optional), from dist/ or
#                              bench/gpu/: PyTorch's numbers (torch_peer.py), then ours on CUDA, merged into
#                              results/gpu-bench.json and results/gpu-bench.md. Under 8 minutes: PyTorch is capped at
#                              200 s, nabla-gpubench at 240 s, and each writes its results after every part, so a part
#                              cut short by its cap loses only itself.
#   ./run.sh --smoke           the same at tiny sizes on ILGPU's CPU accelerator (PyTorch on the CPU): checks the
#                              script and the binary work, measures nothing.
#   bench/gpu/run.sh smoke     publish, then --smoke: what CI / a helper without a GPU can run.
#
# Options after ./run.sh or smoke: --only gemm,attention,gpt2 (some parts only), --no-compile (no torch.compile row).
# Expected on an H100/H200-class GPU (estimates, not measured yet): PyTorch ~15 s SGEMM, ~3 s attention, ~15 s GPT-2
# eager, 30-120 s torch.compile; Nabla ~30 s SGEMM (v1 runs once per case), ~5 s attention, 30-90 s GPT-2 (kernel
# compilation in the warm-up step included).
# PYTHON picks the interpreter (default python3); NABLA_BENCH_SECONDS the time per kernel case (default 0.3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
seconds="${NABLA_BENCH_SECONDS:-0.3}"

usage() {
    echo "usage: run.sh [publish | smoke [OPTIONS] | [--smoke] [OPTIONS]]; OPTIONS: --only gemm,attention,gpt2, --no-compile" >&2
    exit 2
}

publish() {
    local repo dist
    repo="$(cd "$here/../.." && pwd)"
    dist="$here/dist"
    rm -rf "$dist"
    dotnet publish "$repo/bench/Nabla.GpuBench/Nabla.GpuBench.csproj" -c Release -r linux-x64 --self-contained true \
        -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:DebugType=none -o "$dist" >/dev/null
    cp "$here/run.sh" "$here/torch_peer.py" "$repo/bench/gpt2_model.py" "$dist/"
    echo "published $dist: $(du -sh "$dist" | cut -f1) ($(du -sb "$dist" | cut -f1) bytes)"
}

run() {
    local smoke=() only=() compile=() device=cuda binary results
    while (($#)); do
        case "$1" in
            --smoke) smoke=(--smoke); device=ilgpu-cpu ;;
            --only) [[ $# -ge 2 ]] || usage; only=(--only "$2"); shift ;;
            --no-compile) compile=(--no-compile) ;;
            *) usage ;;
        esac
        shift
    done
    binary="$here/nabla-gpubench"
    [[ -x "$binary" ]] || binary="$here/dist/nabla-gpubench"
    [[ -x "$binary" ]] || { echo "run.sh: no nabla-gpubench next to this script or in dist/: run 'bench/gpu/run.sh publish' first" >&2; exit 1; }
    results="$here/results"
    mkdir -p "$results"
    rm -f "$results/torch.json" "$results/gpu-bench.json" "$results/gpu-bench.md" # no stale rows from an earlier run
    local start=$SECONDS
    echo "== PyTorch ($python)"
    if ! timeout 200 "$python" "$here/torch_peer.py" --out "$results/torch.json" --seconds "$seconds" "${smoke[@]}" "${only[@]}" "${compile[@]}"; then
        echo "run.sh: torch_peer.py failed or ran past 200 s; the parts it finished stand" >&2
        [[ -s "$results/torch.json" ]] || echo '{"available": false, "reason": "torch_peer.py failed"}' > "$results/torch.json"
    fi
    echo "== Nabla ($((SECONDS - start)) s so far)"
    if ! timeout 240 "$binary" --device "$device" --out "$results" --peer "$results/torch.json" --seconds "$seconds" "${smoke[@]}" "${only[@]}"; then
        echo "run.sh: nabla-gpubench failed or ran past 240 s; the report has the parts it finished" >&2
    fi
    echo "== done in $((SECONDS - start)) s: $results/gpu-bench.md"
    cat "$results/gpu-bench.md" 2>/dev/null || echo "run.sh: no report: nabla-gpubench finished no part" >&2
}

case "${1:-}" in
    publish) [[ $# -eq 1 ]] || usage; publish ;;
    smoke) shift; publish; run --smoke "$@" ;;
    *) run "$@" ;;
esac
