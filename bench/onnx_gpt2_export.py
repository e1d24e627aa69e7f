#!/usr/bin/python3
"""Exports a GPT-2 to ONNX for the ONNX Runtime peer of `nabla bench generate` (bench/Nabla.Bench/OnnxRuntimePeer.cs):
the same weights Nabla and llama.cpp run, in one graph with past key/values so that decoding is incremental.

  /usr/bin/python3 bench/onnx_gpt2_export.py MODEL_DIR OUT.onnx

MODEL_DIR is a Hugging Face GPT-2 directory (config.json + model.safetensors with GPT2Model's or GPT2LMHeadModel's
names, Conv1D weights (in, out)), as `Gpt2Checkpoints.SaveHuggingFace` writes it. Debian's torch 1.13 exports it with
torch.onnx.export at opset 17 (LayerNormalization is a single op there).

Graph inputs:  input_ids int64 (1, T); past_key_N, past_value_N float32 (1, H, P, D) for each layer N (P may be 0)
Graph outputs: logits float32 (1, 1, V) of the last position; present_key_N, present_value_N (1, H, P + T, D)
Positions are P .. P+T-1, and the causal mask lets position P+i see keys 0 .. P+i.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I64": np.int64}[entry["dtype"]]
        out[name.removeprefix("transformer.")] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=dtype).reshape(entry["shape"]).copy())
    return out


class Gpt2WithPast(torch.nn.Module):
    def __init__(self, config, state):
        super().__init__()
        self.layers, self.heads, self.eps = config["n_layer"], config["n_head"], config.get("layer_norm_epsilon", 1e-5)
        self.channels = config["n_embd"]  # a constant, not x.shape[-1]: the exporter needs fixed normalised shapes
        self.weights = torch.nn.ParameterDict({name.replace(".", "_"): torch.nn.Parameter(value.float(), requires_grad=False)
                                               for name, value in state.items() if value.is_floating_point() and not name.endswith("masked_bias")})

    def w(self, name):
        return self.weights[name.replace(".", "_")]

    def forward(self, input_ids, *past):
        t = input_ids.shape[1]
        p = past[0].shape[2]
        positions = torch.arange(t) + p
        x = self.w("wte.weight")[input_ids] + self.w("wpe.weight")[positions]
        c = self.channels
        d = c // self.heads
        # Query i (at position p + i) may attend to key j when j <= p + i.
        allowed = torch.arange(t + p)[None, :] <= positions[:, None]
        presents = []
        for layer in range(self.layers):
            h = f"h.{layer}."
            y = F.layer_norm(x, (c,), self.w(h + "ln_1.weight"), self.w(h + "ln_1.bias"), self.eps)
            q, k, v = (y @ self.w(h + "attn.c_attn.weight") + self.w(h + "attn.c_attn.bias")).split(c, dim=2)
            q, k, v = (z.view(1, t, self.heads, d).transpose(1, 2) for z in (q, k, v))
            k = torch.cat([past[2 * layer], k], dim=2)
            v = torch.cat([past[2 * layer + 1], v], dim=2)
            presents += [k, v]
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
            scores = scores.masked_fill(~allowed, float("-inf"))
            y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(1, t, c)
            x = x + y @ self.w(h + "attn.c_proj.weight") + self.w(h + "attn.c_proj.bias")
            y = F.layer_norm(x, (c,), self.w(h + "ln_2.weight"), self.w(h + "ln_2.bias"), self.eps)
            y = F.gelu(y @ self.w(h + "mlp.c_fc.weight") + self.w(h + "mlp.c_fc.bias"), approximate="tanh")
            x = x + y @ self.w(h + "mlp.c_proj.weight") + self.w(h + "mlp.c_proj.bias")
        x = F.layer_norm(x, (c,), self.w("ln_f.weight"), self.w("ln_f.bias"), self.eps)
        # Generation needs the next token's logits only: the head runs on the last position (as llama.cpp's does).
        return (x[:, -1:, :] @ self.w("wte.weight").T, *presents)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, out = sys.argv[1], sys.argv[2]
    config = json.load(open(os.path.join(model_dir, "config.json")))
    model = Gpt2WithPast(config, read_safetensors(os.path.join(model_dir, "model.safetensors"))).eval()
    heads, d = config["n_head"], config["n_embd"] // config["n_head"]
    example_past = [torch.zeros(1, heads, 3, d) for _ in range(2 * config["n_layer"])]
    names = [f"past_{kind}_{layer}" for layer in range(config["n_layer"]) for kind in ("key", "value")]
    present = [n.replace("past_", "present_") for n in names]
    axes = {"input_ids": {1: "T"}}
    axes.update({n: {2: "P"} for n in names})
    axes.update({n: {2: "P+T"} for n in present})
    with torch.no_grad():
        torch.onnx.export(model, (torch.tensor([[1, 2]]), *example_past), out, opset_version=17,
                          input_names=["input_ids", *names], output_names=["logits", *present], dynamic_axes=axes)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
