"""What the PyTorch peers of the benchmark harness (bench/*_peer.py) share: thread settings, timing, and the line
protocol they speak with the C# harness (bench/Nabla.Bench/PythonPeer.cs) on stdin/stdout."""
import ctypes
import os
import sys
import time

import torch


def loaded_blas():
    """Path of the BLAS library torch actually calls (Debian's torch links the generic libblas.so.3, which the
    alternatives system points at OpenBLAS when libopenblas0-pthread is installed)."""
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "openblas" in line or "libblas" in line}
    openblas = sorted(p for p in paths if "libopenblas" in p)
    return openblas[0] if openblas else (sorted(paths)[0] if paths else "none")


def set_threads(count):
    """torch.set_num_threads sets torch's own (OpenMP) pool; OpenBLAS's pthreads pool is set through its C API.
    Returns (torch threads, BLAS threads or "?", BLAS library path)."""
    torch.set_num_threads(count)
    blas = loaded_blas()
    blas_threads = "?"
    if "openblas" in os.path.basename(blas):
        library = ctypes.CDLL(blas)
        library.openblas_set_num_threads(count)
        blas_threads = library.openblas_get_num_threads()
    return torch.get_num_threads(), blas_threads, blas


def timed(step, reps, clock=time.perf_counter):
    """One untimed warm-up call of step, then the times of reps calls in milliseconds, as an answer line."""
    step()
    times = []
    for _ in range(reps):
        start = clock()
        step()
        times.append((clock() - start) * 1e3)
    return " ".join(f"{t:.4f}" for t in times)


def serve(answer, describe):
    """Answers request lines until "quit" or the end of stdin. "threads T" sets the thread counts and answers "ok"
    followed by describe(torch threads, BLAS threads, BLAS library); any other request's words go to answer, which
    returns the answer line, or None for a request it does not know."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "threads":
            reply = " ".join(str(w) for w in ["ok", *describe(*set_threads(int(words[1])))])
        else:
            reply = answer(words)
        print(reply if reply is not None else f"error unknown request {words[0]}", flush=True)
