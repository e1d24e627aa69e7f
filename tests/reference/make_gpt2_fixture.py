#!/usr/bin/python3
"""Reference state for the llm.c-style GPT-2 parity test (tests/Nabla.Tests/Models/Gpt2ParityTests.cs).

A tiny GPT-2 (2 layers, 4 heads, 64 channels, vocabulary 101, context 32) with fixed random weights, written
here in plain PyTorch exactly as GPT-2 is defined (pre-norm blocks, learned positions, causal attention,
GELU-tanh MLP, final layer norm, LM head tied to wte). For a batch B=2, T=16 it records the logits, the mean
cross-entropy loss, the gradient of every parameter, and the parameters after 3 AdamW steps (weight decay
only on matrices and embeddings, as Nabla's GPT-2 training does).

Weights are stored with Nabla's names and layout ("h.0.attn.c_attn.weight" as (out, in)).
Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/make_gpt2_fixture.py
Writes tests/Nabla.Tests/Fixtures/gpt2_tiny.safetensors.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from safetensors_io import write_safetensors

V, CTX, C, L, H = 101, 32, 64, 2, 4
B, T = 2, 16
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.95), 1e-8, 0.1


def init_params(gen):
    p = {"wte.weight": torch.randn(V, C, generator=gen) * 0.02, "wpe.weight": torch.randn(CTX, C, generator=gen) * 0.02}
    for i in range(L):
        pre = f"h.{i}."
        p[pre + "ln_1.weight"] = 1 + 0.1 * torch.randn(C, generator=gen)
        p[pre + "ln_1.bias"] = 0.1 * torch.randn(C, generator=gen)
        p[pre + "attn.c_attn.weight"] = torch.randn(3 * C, C, generator=gen) * 0.02
        p[pre + "attn.c_attn.bias"] = torch.randn(3 * C, generator=gen) * 0.02
        p[pre + "attn.c_proj.weight"] = torch.randn(C, C, generator=gen) * 0.02 / math.sqrt(2 * L)
        p[pre + "attn.c_proj.bias"] = torch.randn(C, generator=gen) * 0.02
        p[pre + "ln_2.weight"] = 1 + 0.1 * torch.randn(C, generator=gen)
        p[pre + "ln_2.bias"] = 0.1 * torch.randn(C, generator=gen)
        p[pre + "mlp.c_fc.weight"] = torch.randn(4 * C, C, generator=gen) * 0.02
        p[pre + "mlp.c_fc.bias"] = torch.randn(4 * C, generator=gen) * 0.02
        p[pre + "mlp.c_proj.weight"] = torch.randn(C, 4 * C, generator=gen) * 0.02 / math.sqrt(2 * L)
        p[pre + "mlp.c_proj.bias"] = torch.randn(C, generator=gen) * 0.02
    p["ln_f.weight"] = 1 + 0.1 * torch.randn(C, generator=gen)
    p["ln_f.bias"] = 0.1 * torch.randn(C, generator=gen)
    return {k: v.float().requires_grad_() for k, v in p.items()}


def forward(p, tokens):
    b, t = tokens.shape
    x = p["wte.weight"][tokens] + p["wpe.weight"][torch.arange(t)]
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    for i in range(L):
        pre = f"h.{i}."
        h = F.layer_norm(x, (C,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], 1e-5)
        qkv = F.linear(h, p[pre + "attn.c_attn.weight"], p[pre + "attn.c_attn.bias"])
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, C)
        x = x + F.linear(y, p[pre + "attn.c_proj.weight"], p[pre + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], 1e-5)
        h = F.gelu(F.linear(h, p[pre + "mlp.c_fc.weight"], p[pre + "mlp.c_fc.bias"]), approximate="tanh")
        x = x + F.linear(h, p[pre + "mlp.c_proj.weight"], p[pre + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    return F.linear(x, p["wte.weight"])


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(2024)
    params = init_params(gen)
    tokens = torch.randint(0, V, (B, T + 1), generator=gen)
    x, y = tokens[:, :-1], tokens[:, 1:]
    out = {"input/" + k: v.detach().clone() for k, v in params.items()}
    out["tokens"] = x.int()
    out["targets"] = y.int()

    logits = forward(params, x)
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    loss.backward()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for k, v in params.items():
        out["grad/" + k] = v.grad.detach().clone()

    decay = [v for v in params.values() if v.dim() >= 2]
    no_decay = [v for v in params.values() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS)
    losses = []
    for step in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(forward(params, x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    for k, v in params.items():
        out["step3/" + k] = v.detach().clone()
    out["step_losses"] = torch.tensor(losses)

    arrays = {k: v.numpy() for k, v in out.items()}
    meta = {"config": json.dumps({"vocab_size": V, "n_positions": CTX, "n_embd": C, "n_layer": L, "n_head": H}),
            "adamw": json.dumps({"lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "weight_decay": WD}),
            "torch": torch.__version__, "source": "tests/reference/make_gpt2_fixture.py"}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "gpt2_tiny.safetensors")
    write_safetensors(path, arrays, meta)
    print(f"wrote {path}: loss {out['loss'].item():.6f}, losses after steps {losses}")


if __name__ == "__main__":
    main()
