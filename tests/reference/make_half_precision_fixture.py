#!/usr/bin/python3
"""Reference file for tests/Nabla.Tests/IO/HalfPrecisionTests.cs, written by PyTorch, not by Nabla:

  Fixtures/half_precision.safetensors
    values            F32   float32 values: random normals at several scales, and the cases rounding must get right
                            (zeros, infinities, NaN, float32 subnormals, ties at bfloat16's and float16's last bit,
                            float16's overflow and subnormal range)
    values.bf16       BF16  torch's values.to(torch.bfloat16)     (round to nearest, ties to even)
    values.f16        F16   torch's values.half()
    values.bf16.f32   F32   values.bf16.float(), values.f16.f32 F32  values.f16.float()  (the exact widening)
    cube.bf16         BF16  a (2, 3, 4) tensor, and cube.permuted.f32 F32: torch's cube.permute(2, 0, 1).float()
    scalar.f16        F16   a 0-d tensor; empty.bf16 BF16 of shape (0, 3)

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/make_half_precision_fixture.py
"""
import os

import numpy as np
import torch

from safetensors_io import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Nabla.Tests", "Fixtures", "half_precision.safetensors")


def bf16(t):
    """A torch bfloat16 tensor as the (dtype, bit patterns) pair safetensors_io writes (numpy has no bfloat16)."""
    return ("BF16", t.contiguous().view(torch.int16).numpy().view(np.uint16))


def main():
    g = torch.Generator().manual_seed(0)
    random = torch.cat([torch.randn(64, generator=g) * scale for scale in (1e-3, 1.0, 1e3)])
    f = 2.0 ** -8  # one unit in bfloat16's last place at 1.0 is 2^-7: 1 + 2^-8 lies halfway
    h = 2.0 ** -11  # the same for float16 (10 mantissa bits)
    edges = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1.0, -2.5,
             1 + f, 1 + 3 * f, -(1 + f), 1 + f + 2 ** -20,  # bfloat16 ties (to even: down, up), and just above one
             1 + h, 1 + 3 * h, 1 + h + 2 ** -20,  # float16 ties and just above
             65504.0, 65519.0, 65520.0, 1e5, -1e5,  # float16's largest, the last value rounding to it, overflow to inf
             6e-8, 3e-8, 2.9e-8, 1e-5,  # float16 subnormals; below half the smallest it flushes to zero
             1e-40, -1e-45, 3.0e38, 3.4e38, 3.3961e38]  # float32 subnormals; near float32's top (bfloat16 overflows)
    values = torch.cat([random, torch.tensor(edges, dtype=torch.float32)]).reshape(20, 11)
    assert values.dtype == torch.float32
    cube = (torch.randn(2, 3, 4, generator=g) * 10).to(torch.bfloat16)
    tensors = {
        "values": values.numpy(),
        "values.bf16": bf16(values.to(torch.bfloat16)),
        "values.f16": values.half().numpy(),
        "values.bf16.f32": values.to(torch.bfloat16).float().numpy(),
        "values.f16.f32": values.half().float().numpy(),
        "cube.bf16": bf16(cube),
        "cube.permuted.f32": cube.permute(2, 0, 1).float().contiguous().numpy(),
        "scalar.f16": torch.tensor(-3.140625).half().numpy(),
        "empty.bf16": bf16(torch.zeros(0, 3, dtype=torch.bfloat16)),
    }
    size = write_safetensors(OUT, tensors, {"writer": "tests/reference/make_half_precision_fixture.py", "torch": torch.__version__})
    print(f"half_precision.safetensors: {len(tensors)} tensors, {values.numel()} values, {size} bytes")


if __name__ == "__main__":
    main()
