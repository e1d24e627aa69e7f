#!/usr/bin/python3
"""PyTorch peer for `nabla-bench gemm`: runs the same GEMMs as the C# harness, on request, so both sides see the
same machine noise. Run with Debian's /usr/bin/python3 (python3-torch 1.13 + libopenblas0-pthread).

Line protocol on stdin/stdout, one request per line, one answer line each:
  threads T                    -> "ok <torch threads> <OpenBLAS threads> <torch version> <BLAS library path>"
  gemm TA TB M N K REPS BATCH  -> "<ms> <ms> ..." (REPS wall times of torch.mm(a, b, out=c), or of torch.bmm for a
                                  batch of BATCH products, after 20 ms of warm-up calls)
  gemmcpu TA TB M N K REPS BATCH -> the same, timed by this thread's CPU time (time.thread_time): with one thread
                                  the cost of the work itself, whatever share of a core a busy machine leaves it
  quit
TA/TB are 0/1: the operand is stored transposed and passed as a .t() view, which torch hands to BLAS as a
transpose flag without copying, as the C# kernel reads it through strides.
"""
import time

import torch

from peer_common import serve


_operands = {}


def operands(trans_a, trans_b, m, n, k, batch):
    """The operands of one shape, made once (the harness asks for the same shape several times in a row)."""
    key = (trans_a, trans_b, m, n, k, batch)
    if key not in _operands:
        _operands.clear()
        torch.manual_seed(0)
        a = torch.randn(batch, k, m).transpose(1, 2) if trans_a else torch.randn(batch, m, k)
        b = torch.randn(batch, n, k).transpose(1, 2) if trans_b else torch.randn(batch, k, n)
        c = torch.empty(batch, m, n)
        _operands[key] = (a[0], b[0], c[0]) if batch == 1 else (a, b, c)
    return _operands[key]


WARM_UP_SECONDS = 0.02


def gemm(trans_a, trans_b, m, n, k, reps, batch, clock=time.perf_counter):
    a, b, c = operands(trans_a, trans_b, m, n, k, batch)
    multiply = torch.mm if batch == 1 else torch.bmm
    # Warm up for 20 ms, as the C# side does: threads woken from sleep take milliseconds to run at full speed.
    start = time.perf_counter()
    while True:
        multiply(a, b, out=c)
        if time.perf_counter() - start >= WARM_UP_SECONDS:
            break
    times = []
    for _ in range(reps):
        start = clock()
        multiply(a, b, out=c)
        times.append((clock() - start) * 1e3)
    return times


def answer(words):
    if words[0] not in ("gemm", "gemmcpu"):
        return None
    ta, tb, m, n, k, reps, batch = (int(w) for w in words[1:8])
    clock = time.thread_time if words[0] == "gemmcpu" else time.perf_counter
    return " ".join(f"{t:.4f}" for t in gemm(ta, tb, m, n, k, reps, batch, clock))


def main():
    serve(answer, lambda torch_threads, blas_threads, blas: (torch_threads, blas_threads, torch.__version__, blas))


if __name__ == "__main__":
    main()
