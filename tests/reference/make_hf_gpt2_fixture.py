#!/usr/bin/python3
"""Two tiny GPT-2 directories laid out exactly as the Hugging Face hub serves `gpt2`, for
tests/Nabla.Tests/Models/HuggingFaceDirectoryTests.cs: config.json, generation_config.json, merges.txt,
model.safetensors, tokenizer.json, tokenizer_config.json, vocab.json, plus expected.json (not a hub file).

  Fixtures/hf_gpt2/lm_head/  GPT2LMHeadModel's state dict: "transformer." names, lm_head.weight (tied to wte),
                             the attn.bias / attn.masked_bias mask buffers; tokenizer.json with ["a", "b"] merges
  Fixtures/hf_gpt2/base/     GPT2Model's state dict: no prefix, no head, attn.bias buffers only; tokenizer.json
                             with the older "a b" merges

Both hold the same random weights (gpt2_torch.py, Conv1D weights stored (in, out)) and a small byte-level BPE
vocabulary: GPT-2's 256 byte tokens in encoder.json's order, merges learned here from a short text, then
<|endoftext|>. expected.json holds a prompt, its ids (encoded here with GPT-2's BPE; the prompt is ASCII so
Python's re module can stand in for GPT-2's \\p{L}/\\p{N} split pattern), and the greedy continuation a plain
PyTorch forward of the weights produces (no cache; each step re-runs the whole sequence), with its text.

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/make_hf_gpt2_fixture.py
"""
import json
import os
import re

import torch

from gpt2_torch import GPT2LMHeadModel, randomize
from hf_tokenizer_files import END_OF_TEXT, bytes_to_unicode, write_files
from safetensors_io import write_safetensors

CONFIG = dict(n_positions=64, n_embd=48, n_layer=2, n_head=4)
MERGES = 120
PROMPT = "The quick brown fox said: it's 2026, and the lazy dog's reply"
NEW_TOKENS = 24
CORPUS = ("the quick brown fox jumps over the lazy dog. The dog said: it's a fine day, isn't it? "
          "Foxes and dogs, 1999 and 2026, quick replies and lazy answers; the end. ") * 3

# GPT-2's pre-tokenizer pattern with \p{L} and \p{N} narrowed to ASCII letters and digits (enough for ASCII text).
SPLIT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
BYTE_CHAR = bytes_to_unicode()


def learn_merges(text, count):
    words = {}
    for piece in SPLIT.findall(text):
        key = tuple(BYTE_CHAR[b] for b in piece.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    for _ in range(count):
        pairs = {}
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + n
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])  # most frequent; ties: first in sorted order
        merges.append(best)
        words = {merge_pair(word, best): n for word, n in words.items()}
    return merges


def bpe(token, ranks):
    """GPT-2's encoder.py bpe(): merge the lowest-ranked adjacent pair, all its occurrences, until none is left."""
    word = tuple(token)
    while len(word) > 1:
        pairs = set(zip(word, word[1:]))
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        word = merge_pair(word, best)
    return word


def merge_pair(word, pair):
    """The symbols of word with each occurrence of the adjacent pair, left to right, joined into one."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def encode(text, vocab, ranks):
    ids = []
    for piece in SPLIT.findall(text):
        ids += [vocab[t] for t in bpe("".join(BYTE_CHAR[b] for b in piece.encode("utf-8")), ranks)]
    return ids


def decode(ids, vocab):
    char_byte = {c: b for b, c in BYTE_CHAR.items()}
    token = {i: t for t, i in vocab.items()}
    return bytes(char_byte[c] for i in ids for c in token[i]).decode("utf-8", errors="replace")


def greedy(model, prompt, count, end_of_text):
    """Greedy decoding in float64, checking each choice wins by a margin float32 rounding cannot overturn."""
    ids = list(prompt)
    out = []
    with torch.no_grad():
        for _ in range(count):
            logits = model(torch.tensor([ids]))[0, -1]
            top2 = logits.topk(2)
            assert top2.values[0] - top2.values[1] > 1e-3, f"near tie at step {len(out)}: {top2}"
            next_id = int(top2.indices[0])
            if next_id == end_of_text:
                break
            out.append(next_id)
            ids.append(next_id)
    return out


def main():
    torch.set_num_threads(1)
    merges = learn_merges(CORPUS, MERGES)
    vocab = {}
    for b, c in BYTE_CHAR.items():  # bytes in encoder.json's order (printable ones first)
        vocab[c] = len(vocab)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab[END_OF_TEXT] = len(vocab)
    ranks = {pair: rank for rank, pair in enumerate(merges)}

    config = dict(CONFIG, vocab_size=len(vocab))
    gen = torch.Generator().manual_seed(77)
    model = GPT2LMHeadModel(**config)
    randomize(model, gen, scale=0.3)  # large weights: decisive logits, so greedy choices are robust
    with torch.no_grad():
        # Byte tokens the text never uses (controls, non-ASCII) get zero embeddings, hence logit 0 under the tied
        # head, below the positive logits of the others: the continuation stays printable ASCII.
        for c, b in ((c, b) for b, c in BYTE_CHAR.items() if not (32 <= b < 127)):
            model.transformer.wte.weight[vocab[c]] = 0
    model = model.double().eval()

    prompt = encode(PROMPT, vocab, ranks)
    assert decode(prompt, vocab) == PROMPT
    continuation = greedy(model, prompt, NEW_TOKENS, vocab[END_OF_TEXT])
    assert len(continuation) == NEW_TOKENS and decode(continuation, vocab).isprintable(), decode(continuation, vocab)
    expected = {"prompt": PROMPT, "prompt_ids": prompt, "greedy_ids": continuation, "greedy_text": decode(continuation, vocab),
                "source": "tests/reference/make_hf_gpt2_fixture.py", "torch": torch.__version__}

    # float32 as on the hub; the mask buffer stays uint8, as older transformers versions saved it.
    state = {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in model.state_dict().items()}
    hf_config = {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": vocab[END_OF_TEXT], "embd_pdrop": 0.1, "eos_token_id": vocab[END_OF_TEXT], "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": config["n_positions"], "n_embd": config["n_embd"],
        "n_head": config["n_head"], "n_inner": None, "n_layer": config["n_layer"], "n_positions": config["n_positions"],
        "reorder_and_upcast_attn": False, "resid_pdrop": 0.1, "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
        "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": config["vocab_size"],
    }
    generation_config = {"_from_model_config": True, "bos_token_id": vocab[END_OF_TEXT], "eos_token_id": vocab[END_OF_TEXT],
                         "transformers_version": "4.26.0.dev0"}
    tokenizer_config = {"add_prefix_space": False, "bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT,
                        "model_max_length": config["n_positions"], "tokenizer_class": "GPT2Tokenizer", "unk_token": END_OF_TEXT}

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "hf_gpt2")
    variants = {
        # GPT2LMHeadModel: everything under "transformer.", plus the tied head.
        "lm_head": ({k: v for k, v in state.items()}, True),
        # GPT2Model: the body alone, without the prefix or the masked_bias buffer.
        "base": ({k[len("transformer."):]: v for k, v in state.items() if k.startswith("transformer.") and not k.endswith("masked_bias")}, False),
    }
    for name, (tensors, pair_merges) in variants.items():
        out = os.path.join(root, name)
        os.makedirs(out, exist_ok=True)
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
        write_files(out, vocab, merges, pair_merges)
        for file, content in [("config.json", hf_config), ("generation_config.json", generation_config),
                              ("tokenizer_config.json", tokenizer_config), ("expected.json", expected)]:
            with open(os.path.join(out, file), "w", encoding="utf-8") as f:
                json.dump(content, f, indent=2)
        print(f"wrote {out}: {len(tensors)} tensors, vocabulary {len(vocab)}, greedy {continuation}")


if __name__ == "__main__":
    main()
