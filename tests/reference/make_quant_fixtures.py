#!/usr/bin/python3
"""Reference files for tests/Nabla.Tests/Quantization, written independently of Nabla:

  Fixtures/quant/blocks.safetensors   float rows (random, ties, zeros, tiny, huge) and their bytes in
                                      ggml's Q8_0 and Q4_0 (following ggml-quants.c's quantize_row_q8_0_ref /
                                      quantize_row_q4_0_ref operation by operation, in float32), bitsandbytes'
                                      NF4 (packed nibbles + absmax) and its double-quantised absmax
  Fixtures/quant/fp32/                a tiny random GPT-2 in Hugging Face's layout (64 channels, so rows fill
                                      32- and 64-wide blocks), tokenizer files from hf_gpt2/base
  Fixtures/quant/q8_0|q4_0|nf4/       the same model quantised here, in the layout Nabla documents in
                                      src/Nabla/Quantization/Gpt2Quantization.cs (nf4 with double quantisation)
  Fixtures/quant/expected.safetensors token ids, the float model's logits, and for each format the logits of
                                      the model whose weights are the dequantised values (float64 forward)

Run with Debian's python3-torch (after make_hf_gpt2_fixture.py):  /usr/bin/python3 tests/reference/make_quant_fixtures.py
"""
import json
import os
import re
import shutil

import numpy as np
import torch

from gpt2_torch import GPT2LMHeadModel, randomize
from safetensors_io import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Nabla.Tests", "Fixtures")
OUT = os.path.join(FIXTURES, "quant")
F32 = np.float32

# ---------------------------------------------------------------- ggml (ggml/src/ggml-quants.c)


def roundf(x):
    """C's roundf: halves away from zero (exact in float64 for float32 inputs)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def q8_0(row):
    out = bytearray()
    for block in row.reshape(-1, 32).astype(F32):
        amax = F32(np.max(np.abs(block)))
        d = F32(amax / F32(127))
        inv = F32(F32(1) / d) if d != 0 else F32(0)
        q = roundf((block * inv).astype(F32)).astype(np.int8)
        out += np.float16(d).tobytes() + q.tobytes()
    return bytes(out)


def q4_0(row):
    out = bytearray()
    for block in row.reshape(-1, 32).astype(F32):
        m = block[int(np.argmax(np.abs(block)))]  # the first element of largest magnitude
        d = F32(m / F32(-8))
        inv = F32(F32(1) / d) if d != 0 else F32(0)
        x = (block * inv).astype(F32)
        q = np.minimum(15, np.trunc((x + F32(8.5)).astype(F32))).astype(np.uint8)
        out += np.float16(d).tobytes() + (q[:16] | (q[16:] << 4)).astype(np.uint8).tobytes()
    return bytes(out)


def dequant_ggml(data, fmt, n):
    size = 34 if fmt == "q8_0" else 18
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, size)
    d = raw[:, :2].copy().view(np.float16).astype(np.float64)
    if fmt == "q8_0":
        q = raw[:, 2:].view(np.int8).astype(np.float64)
    else:
        nib = raw[:, 2:]
        q = np.concatenate([(nib & 15).astype(np.float64) - 8, (nib >> 4).astype(np.float64) - 8], axis=1)
    return (q * d).reshape(-1)[:n]

# ---------------------------------------------------------------- bitsandbytes NF4 (csrc/kernels.cu, functional.py)


NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230194568634, 0.33791524171829224, 0.44070982637786865, 0.5626170039176941,
                0.7229568362236023, 1.0], dtype=F32)
# dQuantizeNF4's decision-tree thresholds
NF4_THRESHOLDS = np.array([-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
                           -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
                           0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
                           0.5016634166240692, 0.6427869200706482, 0.8614784181118011])


def nf4(values):
    blocks = values.reshape(-1, 64).astype(F32)
    absmax = np.max(np.abs(blocks), axis=1).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized = (blocks * (F32(1) / absmax)[:, None]).astype(F32)
        index = (normalized[..., None].astype(np.float64) > NF4_THRESHOLDS).sum(axis=-1).astype(np.uint8)
    flat = index.reshape(-1)
    return (flat[0::2] << 4 | flat[1::2]).astype(np.uint8), absmax


def create_dynamic_map():
    """bitsandbytes.functional.create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)."""
    data = []
    for i in range(7):
        items = 2 ** i + 1
        boundaries = torch.linspace(0.1, 1, items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-6 + i)) * means).tolist()
        data += (-(10 ** (-6 + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    data.sort()
    return np.array(data, dtype=F32)


def double_quant(absmax):
    code = create_dynamic_map()
    offset = F32(np.mean(absmax.astype(np.float64)))
    centred = (absmax - offset).astype(F32)
    codes, scales = [], []
    for start in range(0, len(centred), 256):
        block = centred[start:start + 256]
        m = F32(np.max(np.abs(block)))
        inv = F32(F32(1) / m) if m != 0 else F32(0)
        normalized = (block * inv).astype(F32)
        codes += [int(np.argmin(np.abs(code - v))) for v in normalized]
        scales.append(m)
    return np.array(codes, dtype=np.uint8), np.array(scales, dtype=F32), offset, code


def dequant_nf4(packed, absmax):
    idx = np.stack([packed >> 4, packed & 15], axis=1).reshape(-1)
    return (NF4[idx].astype(np.float64).reshape(-1, 64) * absmax.astype(np.float64)[:, None]).reshape(-1)

# ---------------------------------------------------------------- files


def block_cases():
    g = np.random.default_rng(3)
    rows = {
        "normal": g.standard_normal(32 * 24).astype(F32),
        "wide": (g.standard_normal(64 * 8) * 40).astype(F32),
        "ties": np.tile(np.array([1, -1, 0.5, -0.5, 0.25, 2, -2, 0], dtype=F32), 16),  # equal magnitudes, exact halves
        "zeros": np.zeros(64, dtype=F32),
        "tiny": (g.standard_normal(64) * 1e-6).astype(F32),  # half-precision scales in the subnormal range
        "steps": (np.arange(128, dtype=F32) - 64) / F32(8),   # x/d lands on .5 exactly
    }
    tensors = {}
    for name, row in rows.items():
        tensors[f"{name}.input"] = row
        tensors[f"{name}.q8_0"] = np.frombuffer(q8_0(row), dtype=np.uint8)
        tensors[f"{name}.q4_0"] = np.frombuffer(q4_0(row), dtype=np.uint8)
        packed, absmax = nf4(row)
        tensors[f"{name}.nf4"] = packed
        tensors[f"{name}.nf4.absmax"] = absmax
    absmax = np.abs(g.standard_normal(600)).astype(F32) * F32(0.05) + F32(0.01)
    codes, scales, offset, code = double_quant(absmax)
    tensors["double_quant.absmax"] = absmax
    tensors["double_quant.codes"] = codes
    tensors["double_quant.scales"] = scales
    tensors["double_quant.offset"] = np.array([offset], dtype=F32)
    tensors["double_quant.map"] = code
    write_safetensors(os.path.join(OUT, "blocks.safetensors"), tensors, {"source": "tests/reference/make_quant_fixtures.py"})
    print(f"blocks.safetensors: {len(rows)} rows, double quantisation of {len(absmax)} scales")


LINEARS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]


def quantized_state(state, fmt, n_layer):
    """Nabla's quantised GPT-2 layout; returns (tensors, metadata, dequantised float weights by name)."""
    tensors, meta, dequantised = {}, {"format": "pt", "nabla.quantization": fmt}, {}

    def put(name, weight, f):  # weight (out, in)
        rows, cols = weight.shape
        meta["nabla.quantized." + name] = f
        if f == "nf4":
            packed, absmax = nf4(weight.reshape(-1))
            codes, scales, offset, code = double_quant(absmax)
            tensors[name] = packed.reshape(rows, cols // 2)
            tensors[name + ".absmax"] = codes
            tensors[name + ".nested_absmax"] = scales
            tensors[name + ".nested_offset"] = np.array([offset], dtype=F32)
            used = (code[codes].astype(F32) * scales[np.arange(len(codes)) // 256] + offset).astype(F32)
            dequantised[name] = dequant_nf4(packed, used).reshape(rows, cols)
        else:
            data = b"".join((q8_0 if f == "q8_0" else q4_0)(r) for r in weight)
            tensors[name] = np.frombuffer(data, dtype=np.uint8).reshape(rows, -1)
            dequantised[name] = dequant_ggml(data, f, rows * cols).reshape(rows, cols)

    for name, value in state.items():
        layer = next((l for l in LINEARS if name.endswith(l + ".weight")), None)
        if layer is not None:
            put(name, value.T.copy(), fmt)  # Conv1D (in, out) → (out, in)
        elif name == "wte.weight":
            put(name, value, "q8_0")
        else:
            tensors[name] = value
    return tensors, meta, dequantised


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    block_cases()

    base = os.path.join(FIXTURES, "hf_gpt2", "base")
    hf_config = json.load(open(os.path.join(base, "config.json")))
    config = dict(vocab_size=hf_config["vocab_size"], n_positions=64, n_embd=64, n_layer=2, n_head=4)
    hf_config.update(n_embd=64, n_ctx=64, n_positions=64)
    model = GPT2LMHeadModel(**config)
    randomize(model, torch.Generator().manual_seed(11), scale=0.1)
    model = model.double().eval()
    state = {k[len("transformer."):]: v.float().numpy() for k, v in model.state_dict().items()
             if k.startswith("transformer.") and not re.search(r"\.attn\.(bias|masked_bias)$", k)}
    ids = torch.randint(0, config["vocab_size"], (1, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = {"ids": ids[0].numpy().astype(np.int32), "logits.fp32": model(ids)[0].float().numpy()}

    def directory(name, tensors, meta):
        out = os.path.join(OUT, name)
        os.makedirs(out, exist_ok=True)
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, meta)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(hf_config, f, indent=2)
        for file in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(base, file), out)

    directory("fp32", state, {"format": "pt"})
    for fmt in ("q8_0", "q4_0", "nf4"):
        tensors, meta, dequantised = quantized_state(state, fmt, config["n_layer"])
        directory(fmt, tensors, meta)
        reference = GPT2LMHeadModel(**config).double().eval()
        with torch.no_grad():
            sd = {("transformer." + k): torch.tensor(v, dtype=torch.float64) for k, v in state.items()}
            for name, w in dequantised.items():
                sd["transformer." + name] = torch.tensor(w if name == "wte.weight" else w.T.copy(), dtype=torch.float64)
            sd["lm_head.weight"] = sd["transformer.wte.weight"]
            reference.load_state_dict(sd, strict=False)
            expected[f"logits.{fmt}"] = reference(ids)[0].float().numpy()
        error = np.abs(expected[f"logits.{fmt}"] - expected["logits.fp32"]).max()
        print(f"{fmt}: {len(tensors)} tensors; max |logit − float logit| {error:.4f}")
    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected, {"source": "tests/reference/make_quant_fixtures.py"})


if __name__ == "__main__":
    main()
