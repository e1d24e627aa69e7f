#!/usr/bin/python3
"""llm.c checkpoints of a tiny random GPT-2, written the way llm.c's train_gpt2.py writes them (write_model /
write_tensors / pad_vocab), for tests/Nabla.Tests/Models/LlmcCheckpointTests.cs:

  Fixtures/llmc/gpt2_tiny_fp32.bin   version 3: float32
  Fixtures/llmc/gpt2_tiny_bf16.bin   version 5: bfloat16 (torch's round-to-nearest-even conversion)
  Fixtures/llmc/logits.safetensors   tokens (B, T); logits_fp32 of the float32 weights; logits_bf16 of the
                                     weights rounded to bfloat16 (what the version-5 file holds), both from a
                                     plain PyTorch forward (gpt2_torch.py) in float64

The header is 256 int32: magic 20240326, version, maxT, V, L, H, C, padded V; then every parameter in llm.c's
order, grouped by kind across layers, with nn.Linear's (out, in) weights (the transpose of Hugging Face's
Conv1D, as llm.c's GPT uses nn.Linear) and wte padded with zero rows to a multiple of 128 (the vocabulary is
deliberately not one, so the padding is exercised).

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/make_llmc_fixture.py
"""
import os

import torch
import torch.nn.functional as F

from gpt2_torch import GPT2LMHeadModel, randomize
from safetensors_io import write_safetensors

CONFIG = dict(vocab_size=203, n_positions=40, n_embd=32, n_layer=2, n_head=4)
B, T = 2, 12
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


# ---- llm.c's writer (train_gpt2.py), kept as written there except where noted ----
def write_fp32(tensor, file):
    t = tensor.detach().cpu().to(torch.float32)
    file.write(t.numpy().tobytes())


def write_bf16(tensor, file):
    t = tensor.detach().cpu().to(torch.bfloat16)
    t = t.view(torch.int16)  # numpy has no bfloat16: reinterpret the bits as int16
    file.write(t.numpy().tobytes())


def write_tensors(model_tensors, L, file, dtype):
    write_fun = write_fp32 if dtype == "float32" else write_bf16
    write_fun(model_tensors["transformer.wte.weight"], file)  # (V, C)
    write_fun(model_tensors["transformer.wpe.weight"], file)  # (T, C)
    for kind in ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
                 "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"):
        for i in range(L):
            write_fun(model_tensors[f"transformer.h.{i}.{kind}"], file)
    write_fun(model_tensors["transformer.ln_f.weight"], file)  # (C, )
    write_fun(model_tensors["transformer.ln_f.bias"], file)  # (C, )


def pad_vocab(tensor, multiple=128, value=0):
    # (llm.c also asserts V == 50257 here, "just being defensive"; this tiny model's V is not.)
    V, C = tensor.shape
    Vp = ((V + multiple - 1) // multiple) * multiple
    pad_rows = Vp - V
    return tensor if pad_rows == 0 else F.pad(tensor, (0, 0, 0, pad_rows), value=value)


def write_model(params, config, filename, dtype):
    version = {"float32": 3, "bfloat16": 5}[dtype]
    header = torch.zeros(256, dtype=torch.int32)
    header[0] = 20240326
    header[1] = version
    header[2] = config["n_positions"]  # block_size
    header[3] = config["vocab_size"]
    header[4] = config["n_layer"]
    header[5] = config["n_head"]
    header[6] = config["n_embd"]
    params = dict(params)
    params["transformer.wte.weight"] = pad_vocab(params["transformer.wte.weight"])
    header[7] = params["transformer.wte.weight"].size(0)
    with open(filename, "wb") as file:
        file.write(header.numpy().tobytes())
        write_tensors(params, config["n_layer"], file, dtype)


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(31)
    model = GPT2LMHeadModel(**CONFIG)
    randomize(model, gen, scale=0.1)
    tokens = torch.randint(0, CONFIG["vocab_size"], (B, T), generator=gen)

    # llm.c's GPT holds nn.Linear weights (out, in): the transpose of the Conv1D weights here.
    params = {k: (v.t() if k.endswith(CONV1D) else v).detach().clone() for k, v in model.named_parameters()}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "llmc")
    os.makedirs(out, exist_ok=True)
    write_model(params, CONFIG, os.path.join(out, "gpt2_tiny_fp32.bin"), "float32")
    write_model(params, CONFIG, os.path.join(out, "gpt2_tiny_bf16.bin"), "bfloat16")

    with torch.no_grad():
        logits_fp32 = model.double()(tokens).float()
        for p in model.parameters():
            p.copy_(p.float().to(torch.bfloat16).double())
        logits_bf16 = model(tokens).float()
    write_safetensors(os.path.join(out, "logits.safetensors"),
                      {"tokens": tokens.int().numpy(), "logits_fp32": logits_fp32.numpy(), "logits_bf16": logits_bf16.numpy()},
                      {"source": "tests/reference/make_llmc_fixture.py", "torch": torch.__version__})
    print(f"wrote {out}: |logits_fp32 - logits_bf16| max {(logits_fp32 - logits_bf16).abs().max().item():.4f}")


if __name__ == "__main__":
    main()
