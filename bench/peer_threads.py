"""Thread settings shared by the PyTorch peers of the benchmark harness (bench/*_peer.py)."""
import ctypes
import os

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
