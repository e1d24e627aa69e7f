#!/usr/bin/python3
"""Cross-check for docs/quantization.md: the perplexity of a float GPT-2 directory (Hugging Face layout, e.g.
`nabla train gpt`'s run/model) on token ids, in PyTorch, with its weights as they are and as each format's
dequantised values. The quantisation follows make_quant_fixtures.py (ggml's reference Q8_0/Q4_0, bitsandbytes'
NF4 with double-quantised scales; the tied embedding/head in Q8_0, as Nabla stores it), not Nabla; activations
stay float here, while Nabla's prefill quantises them to Q8_0 per row, so the two may differ in the last digits.
The windows are PerplexityEvaluator's: WINDOW tokens every STRIDE, each token after the first predicted once.

  nabla tokenize --vocab MODEL --file held-out.txt > ids.txt
  /usr/bin/python3 tests/reference/quantized_perplexity.py MODEL ids.txt [WINDOW [STRIDE]]
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

from gpt2_torch import GPT2LMHeadModel
from make_quant_fixtures import quantized_state


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I32": np.int32}
    return {name: np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
            for name, e in header.items() if name != "__metadata__"}


def perplexity(model, ids, window, stride):
    nll, scored, scored_up_to, begin = 0.0, 0, 1, 0
    with torch.no_grad():
        while scored_up_to < len(ids):
            end = min(begin + window, len(ids))
            x = torch.tensor(ids[begin:end - 1]).unsqueeze(0)
            y = torch.tensor([ids[t] if t >= scored_up_to else -100 for t in range(begin + 1, end)])
            nll += F.cross_entropy(model(x)[0].double(), y, ignore_index=-100, reduction="sum").item()
            scored += end - scored_up_to
            scored_up_to, begin = end, begin + stride
    return nll / scored, scored


def main():
    torch.set_num_threads(2)
    model_dir, ids_path = sys.argv[1], sys.argv[2]
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    stride = int(sys.argv[4]) if len(sys.argv) > 4 else window
    config = json.load(open(os.path.join(model_dir, "config.json")))
    state = {k: v.copy() for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    ids = [int(t) for t in open(ids_path).read().split()]
    args = dict(vocab_size=config["vocab_size"], n_positions=config["n_positions"], n_embd=config["n_embd"],
                n_layer=config["n_layer"], n_head=config["n_head"])
    for fmt in ("fp32", "q8_0", "q4_0", "nf4"):
        weights = dict(state)
        if fmt != "fp32":
            _, _, dequantised = quantized_state(state, fmt, config["n_layer"])
            for name, w in dequantised.items():  # back to Conv1D's (in, out), except the embedding
                weights[name] = (w if name == "wte.weight" else w.T).astype(np.float32)
        model = GPT2LMHeadModel(**args).eval()
        sd = {"transformer." + k: torch.tensor(v) for k, v in weights.items()}
        sd["lm_head.weight"] = sd["transformer.wte.weight"]
        missing = model.load_state_dict(sd, strict=False).missing_keys
        assert all(k.endswith(("attn.bias", "attn.masked_bias")) for k in missing), missing
        loss, scored = perplexity(model, ids, window, stride)
        print(f"{fmt}{' (double-quantised scales)' if fmt == 'nf4' else ''}: {scored} tokens, loss {loss:.4f} nats/token, perplexity {math.exp(loss):.3f}")


if __name__ == "__main__":
    main()
