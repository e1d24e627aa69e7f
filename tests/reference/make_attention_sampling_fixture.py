#!/usr/bin/python3
"""References for attention beyond GPT-2's training case and for top-k / top-p sampling
(tests/Nabla.Tests/Ops/AttentionFixtureTests.cs, tests/Nabla.Tests/Models/SamplingDistributionTests.cs).

Fixtures/attention_cases.safetensors — for each case "NAME/": q (B, H, Tq, D), k and v (B, H, Tk, D), a random
upstream gradient "grad_out", the output "out" and the gradients dq, dk, dv of sum(out * grad_out). Computed
in float64 from the float32 inputs as softmax(q kᵀ · scale + mask) v, written out explicitly because torch 1.13
has no scaled_dot_product_attention; the mask is -inf where key j lies after query i, the queries being the
last Tq of the Tk positions (i + Tk - Tq < j), i.e. PyTorch's is_causal for Tq = Tk and the KV-cache decoding
case for Tq < Tk. The metadata gives each case's causal flag and scale.

Fixtures/sampling_cases.safetensors — for each case "NAME/": a row of logits and the exact distribution that
sampling with the case's temperature, top-k and top-p draws from, as Hugging Face's generate() defines it:
logits / temperature, keep the k largest (0: all), softmax, keep the smallest set of most likely tokens whose
probability reaches p, renormalise.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/make_attention_sampling_fixture.py
"""
import json
import math
import os
import zlib

import torch

from safetensors_io import write_safetensors

ATTENTION = [  # name, B, H, Tq, Tk, D, causal, scale (None: 1/sqrt(D))
    ("noncausal_square", 2, 3, 7, 7, 8, False, None),
    ("noncausal_fewer_queries", 1, 2, 3, 9, 16, False, None),
    ("noncausal_more_queries", 1, 2, 6, 4, 8, False, 0.3),
    ("causal_decode_one", 2, 2, 1, 10, 8, True, None),
    ("causal_offset", 1, 3, 4, 11, 16, True, None),
    ("causal_square", 1, 2, 6, 6, 4, True, None),
]

SAMPLING = [  # name, vocabulary, temperature, top_k, top_p
    ("plain", 24, 1.0, 0, 1.0),
    ("top_k", 32, 1.0, 5, 1.0),
    ("top_p_cold", 32, 0.7, 0, 0.9),
    ("top_k_top_p_hot", 40, 1.5, 10, 0.8),
    ("top_p_inside_top_k", 32, 0.5, 6, 0.5),
    ("top_k_hot", 16, 2.5, 8, 1.0),
]


def generator(name):
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def attention(q, k, v, causal, scale):
    tq, tk = q.shape[2], k.shape[2]
    scores = q @ k.transpose(-1, -2) * scale
    if causal:
        i = torch.arange(tq).view(-1, 1) + (tk - tq)
        j = torch.arange(tk).view(1, -1)
        scores = scores.masked_fill(j > i, float("-inf"))
    return scores.softmax(-1) @ v


def truncated_distribution(logits, temperature, top_k, top_p):
    scaled = logits / temperature
    if top_k > 0:
        kth = scaled.topk(top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = scaled.softmax(-1)
    if top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        cumulative = sorted_probs.cumsum(-1)
        keep = int((cumulative < top_p).sum()) + 1  # the smallest prefix whose total reaches p
        assert all(abs(c - top_p) > 1e-4 for c in cumulative[:keep + 1].tolist()), "cumulative probability too close to p"
        mask = torch.ones_like(probs, dtype=torch.bool)
        mask[order[:keep]] = False
        probs = probs.masked_fill(mask, 0)
    return probs / probs.sum()


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures")
    tensors, meta = {}, {"source": "tests/reference/make_attention_sampling_fixture.py", "torch": torch.__version__}
    for name, b, h, tq, tk, d, causal, scale in ATTENTION:
        g = generator(name)
        q, k, v = (torch.randn(b, h, t, d, generator=g) for t in (tq, tk, tk))
        grad_out = torch.randn(b, h, tq, d, generator=g)
        q64, k64, v64 = (x.double().requires_grad_() for x in (q, k, v))
        out = attention(q64, k64, v64, causal, scale if scale is not None else 1 / math.sqrt(d))
        (out * grad_out.double()).sum().backward()
        for key, value in [("q", q), ("k", k), ("v", v), ("grad_out", grad_out), ("out", out.detach()),
                           ("dq", q64.grad), ("dk", k64.grad), ("dv", v64.grad)]:
            tensors[f"{name}/{key}"] = value.float().numpy()
        meta[name] = json.dumps({"causal": causal, "scale": scale})
    write_safetensors(os.path.join(root, "attention_cases.safetensors"), tensors, meta)

    tensors, meta = {}, {"source": "tests/reference/make_attention_sampling_fixture.py", "torch": torch.__version__}
    for name, vocabulary, temperature, top_k, top_p in SAMPLING:
        logits = torch.randn(vocabulary, generator=generator(name), dtype=torch.float64) * 2
        logits = logits.float().double()  # the float32 values the test reads
        tensors[f"{name}/logits"] = logits.float().numpy()
        tensors[f"{name}/probs"] = truncated_distribution(logits, temperature, top_k, top_p).float().numpy()
        meta[name] = json.dumps({"temperature": temperature, "top_k": top_k, "top_p": top_p})
    write_safetensors(os.path.join(root, "sampling_cases.safetensors"), tensors, meta)
    print(f"wrote attention_cases.safetensors ({len(ATTENTION)} cases) and sampling_cases.safetensors ({len(SAMPLING)} cases) in {root}")


if __name__ == "__main__":
    main()
