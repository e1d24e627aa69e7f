#!/usr/bin/python3
"""GGUF files written by llama.cpp's own Python writer (gguf-py), for tests/Nabla.Tests/IO/GgufTests.cs:

  Fixtures/gguf/gpt2_{f32,f16,q8_0,q4_0}.gguf  the tiny GPT-2 of Fixtures/hf_gpt2/base (run make_hf_gpt2_fixture.py
                              first) as llama.cpp's converter lays it out (convert_hf_to_gguf.py, GPT2Model): Conv1D
                              weights transposed to (out, in), tensor names token_embd, position_embd, blk.N.*,
                              output_norm; hyper-parameters gpt2.*; the tokenizer as tokenizer.ggml.* arrays. As the
                              converter does, 1-D tensors, norms and position_embd stay F32 and the other matrices
                              take the file's type (quantised by gguf.quants, which matches ggml's C quantisers).
  Fixtures/gguf/metadata.gguf one metadata key of every GGUF value type (and arrays: of strings, of ints, nested),
                              general.alignment = 64, and one small tensor of each type F32, F16, Q8_0, Q4_0
                              (the Q4_0 one 3-D), whose source values and decoded values are in expected.safetensors.
  Fixtures/gguf/expected.safetensors
      prompt_ids              the prompt of hf_gpt2/base/expected.json
      logits_<type>           (T, V) logits of the prompt, computed in float64 by gpt2_torch.py from the weights
                              as gguf-py decodes them from gpt2_<type>.gguf
      greedy_<type>           24 greedy tokens after the prompt (float64; each choice wins by a margin > 1e-3)
      meta_<type>_source / meta_<type>_decoded  the tensors of metadata.gguf before encoding and as gguf-py decodes them
                              (also q8_0_edges, q4_0_edges: zero blocks, values halfway between codes, a huge value)

gguf-py is not on PyPI's reachable mirror here; it ships in llama.cpp's source, which npm's node-llama-cpp carries:

  mkdir /tmp/llama && cd /tmp/llama && npm i -E node-llama-cpp@3.21.1
  git clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle llama.cpp
  GGUF_PY=/tmp/llama/llama.cpp/gguf-py /usr/bin/python3 tests/reference/make_gguf_fixture.py
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.environ.get("GGUF_PY") or sys.exit("set GGUF_PY to llama.cpp's gguf-py folder (see the docstring)"))
import gguf  # noqa: E402

from gpt2_torch import GPT2LMHeadModel  # noqa: E402
from make_hf_gpt2_fixture import greedy  # noqa: E402
from make_lora_fixture import read_safetensors  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Nabla.Tests", "Fixtures")
BASE = os.path.join(FIXTURES, "hf_gpt2", "base")
OUT = os.path.join(FIXTURES, "gguf")
Q = gguf.GGMLQuantizationType
TYPES = {"f32": (Q.F32, gguf.LlamaFileType.ALL_F32), "f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
         "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0), "q4_0": (Q.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0)}

# Hugging Face GPT2Model names -> GGUF names (gguf-py's tensor_mapping.py holds the same pairs for MODEL_ARCH.GPT2).
LAYER_NAMES = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
               "ln_2": "ffn_norm", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
MODEL_NAMES = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
               "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}
CONV1D = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def gguf_name(name):
    if name in MODEL_NAMES:
        return MODEL_NAMES[name]
    _, layer, rest = name.split(".", 2)
    for ours, theirs in LAYER_NAMES.items():
        if rest.startswith(ours + "."):
            return f"blk.{layer}.{theirs}{rest[len(ours):]}"
    raise KeyError(name)


def gguf_tensors(state):
    """The converter's modify_tensors for GPT-2: mask buffers dropped, Conv1D weights transposed to (out, in)."""
    for name, value in state.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        array = value.numpy().astype(np.float32)
        if name.endswith(CONV1D):
            array = np.ascontiguousarray(array.T)
        yield gguf_name(name), array


def storage_type(name, array, file_type):
    """The converter's choice (convert_hf_to_gguf.py prepare_tensors) and llama-quant.cpp's: 1-D tensors, norms and
    position embeddings in F32; other matrices in the file's type; F16 where the rows do not split into blocks."""
    if array.ndim <= 1 or name.endswith("_norm.weight") or name == "position_embd.weight":
        return Q.F32
    block, _ = gguf.GGML_QUANT_SIZES[file_type]
    return file_type if array.shape[-1] % block == 0 else Q.F16


def encode(array, qtype):
    if qtype == Q.F32:
        return array.astype(np.float32), None
    if qtype == Q.F16:
        return array.astype(np.float16), None
    return gguf.quants.quantize(array, qtype), qtype


def write_gpt2(path, config, tensors, vocab, merges, end_of_text, qtype, file_type):
    writer = gguf.GGUFWriter(path, "gpt2")
    writer.add_name("nabla-tiny-gpt2")
    writer.add_block_count(config["n_layer"])
    writer.add_context_length(config["n_ctx"])
    writer.add_embedding_length(config["n_embd"])
    writer.add_feed_forward_length(4 * config["n_embd"])
    writer.add_head_count(config["n_head"])
    writer.add_layer_norm_eps(config["layer_norm_epsilon"])
    writer.add_file_type(file_type)
    if qtype not in (Q.F32, Q.F16):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens = sorted(vocab, key=vocab.get)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t == "<|endoftext|>" else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges([f"{left} {right}" for left, right in merges])
    writer.add_bos_token_id(end_of_text)
    writer.add_eos_token_id(end_of_text)
    decoded = {}
    for name, array in tensors:
        data, raw = encode(array, storage_type(name, array, qtype))
        writer.add_tensor(name, data, raw_dtype=raw)
        decoded[name] = gguf.quants.dequantize(data, raw) if raw is not None else data.astype(np.float32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return decoded


def torch_model(config, decoded):
    """gpt2_torch's GPT-2 holding the decoded GGUF weights (Conv1D weights transposed back to (in, out)), in float64."""
    model = GPT2LMHeadModel(vocab_size=config["vocab_size"], n_positions=config["n_positions"], n_embd=config["n_embd"],
                            n_layer=config["n_layer"], n_head=config["n_head"], eps=config["layer_norm_epsilon"])
    state = {}
    for name, p in model.transformer.named_parameters():
        value = torch.from_numpy(np.array(decoded[gguf_name(name)], dtype=np.float32))
        state[name] = value.T if name.endswith(CONV1D) else value
    missing, unexpected = model.transformer.load_state_dict(state, strict=False)
    assert not unexpected and all(m.endswith(("attn.bias", "masked_bias")) for m in missing), (missing, unexpected)
    return model.double().eval()


def write_metadata_file(path, gen):
    writer = gguf.GGUFWriter(path, "nabla-test")
    writer.add_custom_alignment(64)
    V = gguf.GGUFValueType
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4000000000)
    writer.add_int32("test.i32", -2000000000)
    writer.add_float32("test.f32", 0.15625)
    writer.add_uint64("test.u64", 18000000000000000000)
    writer.add_int64("test.i64", -9000000000000000000)
    writer.add_float64("test.f64", -2.5e-300)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo, GGUF ∇")
    writer.add_array("test.strings", ["a", "", "ĠThe"])
    writer.add_key_value("test.i16s", [-1, 2, -3], V.ARRAY, sub_type=V.INT16)
    writer.add_array("test.nested", [[1, 2], [3]])
    tensors = {
        "f32": (torch.randn(3, 5, generator=gen).numpy(), Q.F32),
        "f16": (torch.randn(2, 7, generator=gen).numpy(), Q.F16),
        "q8_0": (torch.randn(2, 64, generator=gen).numpy(), Q.Q8_0),
        "q4_0": (torch.randn(2, 3, 32, generator=gen).numpy(), Q.Q4_0),
        # Blocks where rounding decides: all zeros (scale 0), values exactly halfway between two codes, one huge value.
        "q8_0_edges": (np.array([[0.0] * 32, [127.0, 0.5, -0.5, 1.5, -2.5, 126.5] + [3.25] * 26, [1e30] + [1.0] * 31]), Q.Q8_0),
        "q4_0_edges": (np.array([[0.0] * 32, [-8.0, 0.5, -0.5, 1.5, -2.5, 7.5, -7.5, 8.0] + [0.25] * 24, [8.0] + [-1.0] * 31]), Q.Q4_0),
    }
    expected = {}
    for name, (source, qtype) in tensors.items():
        source = source.astype(np.float32)
        data, raw = encode(source, qtype)
        writer.add_tensor(f"tensor_{name}", data, raw_dtype=raw)
        expected[f"meta_{name}_source"] = source
        expected[f"meta_{name}_decoded"] = (gguf.quants.dequantize(data, raw) if raw is not None else data).astype(np.float32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    config = json.load(open(os.path.join(BASE, "config.json")))
    vocab = json.load(open(os.path.join(BASE, "vocab.json"), encoding="utf-8"))
    merge_lines = open(os.path.join(BASE, "merges.txt"), encoding="utf-8").read().splitlines()
    merges = [tuple(line.split(" ")) for line in merge_lines if line and not line.startswith("#version")]
    expected_run = json.load(open(os.path.join(BASE, "expected.json")))
    prompt = expected_run["prompt_ids"]
    end_of_text = vocab["<|endoftext|>"]
    tensors = list(gguf_tensors(read_safetensors(os.path.join(BASE, "model.safetensors"))))

    expected = {"prompt_ids": np.array(prompt, dtype=np.int32)}
    for label, (qtype, file_type) in TYPES.items():
        path = os.path.join(OUT, f"gpt2_{label}.gguf")
        decoded = write_gpt2(path, config, tensors, vocab, merges, end_of_text, qtype, file_type)
        model = torch_model(config, decoded)
        with torch.no_grad():
            logits = model(torch.tensor([prompt]))[0]
        continuation = greedy(model, prompt, len(expected_run["greedy_ids"]), end_of_text)
        expected[f"logits_{label}"] = logits.float().numpy()
        expected[f"greedy_{label}"] = np.array(continuation, dtype=np.int32)
        print(f"wrote {path} ({os.path.getsize(path)} bytes); greedy {continuation}")
    expected.update(write_metadata_file(os.path.join(OUT, "metadata.gguf"), torch.Generator().manual_seed(5)))
    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected,
                      {"source": "tests/reference/make_gguf_fixture.py", "torch": torch.__version__})
    print(f"wrote {OUT}/metadata.gguf and expected.safetensors")


if __name__ == "__main__":
    main()
