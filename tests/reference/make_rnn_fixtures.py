#!/usr/bin/python3
"""PyTorch reference values for the recurrent layers (tests/Nabla.Tests/NN/RecurrentParityTests.cs).

Each case builds torch.nn.RNN / LSTM / GRU with the case's settings and records under "<case>/...":
  sd/<name>          the state dict (PyTorch's names, loaded strictly by the test),
  x, h0, c0          the input (T, B, in) or (B, T, in) and the optional initial states,
  out, hn, cn        the output (padded back with pad_packed_sequence for packed cases) and final states,
  dout, dhn, dcn     fixed random weights of the scalar loss sum(out*dout) + sum(hn*dhn) + sum(cn*dcn),
  grad_x, grad_h0, grad_c0, grad/<name>   the gradients of that loss.
The settings (mode, sizes, layers, lengths, ...) are JSON in the metadata under the case's name. Packed cases use
pack_padded_sequence(enforce_sorted=False) with unsorted lengths, some shorter than T, so every padded position
and the per-sequence start of the reverse direction are exercised. One LSTM case has a projection (proj_size).

Run with Debian's python3-torch:
    /usr/bin/python3 tests/reference/make_rnn_fixtures.py
Writes tests/Nabla.Tests/Fixtures/rnn_layers.safetensors.
"""
import json
import os
import sys

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

T, B, IN, H = 5, 3, 4, 3

CASES = {
    # name: mode, settings, initial states given, lengths (None = not packed)
    "rnn_tanh": ("RNN", dict(), False, None),
    "rnn_relu_2layer_bidir_batchfirst_h0": ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True, batch_first=True), True, None),
    "rnn_tanh_packed_bidir": ("RNN", dict(bidirectional=True), False, [5, 2, 4]),
    "lstm": ("LSTM", dict(), False, None),
    "lstm_2layer_bidir_h0c0": ("LSTM", dict(num_layers=2, bidirectional=True), True, None),
    "lstm_packed_2layer_bidir_batchfirst": ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True), False, [3, 5, 1]),
    "lstm_packed_h0c0_nobias": ("LSTM", dict(bias=False), True, [2, 4, 3]),
    "lstm_proj_2layer_bidir_packed_h0c0": ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2), True, [4, 5, 2]),
    "gru": ("GRU", dict(), False, None),
    "gru_2layer_bidir_batchfirst_h0": ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True), True, None),
    "gru_packed_bidir_h0": ("GRU", dict(bidirectional=True), True, [4, 1, 3]),
}


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(20240907)
    rng = np.random.default_rng(20240907)
    tensors, metadata = {}, {"torch": torch.__version__, "source": "tests/reference/make_rnn_fixtures.py"}

    def record(key, value):
        tensors[key] = np.ascontiguousarray(value.detach().numpy()).astype(np.float32)

    for name, (mode, settings, with_initial, lengths) in CASES.items():
        layer = getattr(torch.nn, mode)(IN, H, **settings)
        layers = settings.get("num_layers", 1) * (2 if settings.get("bidirectional") else 1)
        batch_first = settings.get("batch_first", False)
        x = torch.tensor(randn(rng, *((B, T, IN) if batch_first else (T, B, IN))), requires_grad=True)
        h0 = torch.tensor(randn(rng, layers, B, settings.get("proj_size") or H), requires_grad=True) if with_initial else None
        c0 = torch.tensor(randn(rng, layers, B, H), requires_grad=True) if with_initial and mode == "LSTM" else None
        state = (h0, c0) if mode == "LSTM" and with_initial else h0
        if lengths is None:
            out, final = layer(x, state)
        else:
            packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
            out, final = layer(packed, state)
            out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
        hn, cn = final if mode == "LSTM" else (final, None)
        dout, dhn = torch.tensor(randn(rng, *out.shape)), torch.tensor(randn(rng, *hn.shape))
        loss = (out * dout).sum() + (hn * dhn).sum()
        dcn = None
        if cn is not None:
            dcn = torch.tensor(randn(rng, *cn.shape))
            loss = loss + (cn * dcn).sum()
        loss.backward()

        for key, value in layer.state_dict().items():
            record(f"{name}/sd/{key}", value)
        for key, value in layer.named_parameters():
            record(f"{name}/grad/{key}", value.grad)
        for key, value in dict(x=x, h0=h0, c0=c0, out=out, hn=hn, cn=cn, dout=dout, dhn=dhn, dcn=dcn).items():
            if value is not None:
                record(f"{name}/{key}", value)
        record(f"{name}/grad_x", x.grad)
        if h0 is not None:
            record(f"{name}/grad_h0", h0.grad)
        if c0 is not None:
            record(f"{name}/grad_c0", c0.grad)
        metadata[name] = json.dumps(dict(mode=mode, input_size=IN, hidden_size=H, nonlinearity=settings.get("nonlinearity", "tanh"),
                                         num_layers=settings.get("num_layers", 1), bias=settings.get("bias", True),
                                         batch_first=batch_first, bidirectional=settings.get("bidirectional", False),
                                         proj_size=settings.get("proj_size", 0), lengths=lengths))

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "rnn_layers.safetensors")
    write_safetensors(out, tensors, metadata)
    print(f"wrote {out}: {len(tensors)} tensors, {os.path.getsize(out) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
