#!/usr/bin/python3
"""Writes a byte-level BPE tokenizer in Hugging Face's files, standard library only (CI's python3 has no torch):
  vocab.json      the token -> id map as tokenizers' BPE.save writes it (compact, UTF-8, not ASCII-escaped)
  merges.txt      "#version: 0.2", then one "left right" merge per line, highest priority first
  tokenizer.json  tokenizers' serialization of GPT-2's tokenizer (the layout of the hub's gpt2/tokenizer.json):
                  added_tokens, no normalizer, ByteLevel pre-tokenizer / post-processor / decoder, and the
                  "BPE" model with vocab and merges; merges as ["left", "right"] pairs (tokenizers >= 0.20) or,
                  with pair_merges=False, as "left right" strings (older files)

As a script it converts OpenAI's GPT-2 files into them (tests/data/fetch-test-data.sh runs it):
  python3 tests/reference/hf_tokenizer_files.py ENCODER_JSON VOCAB_BPE OUT_DIR
writes OUT_DIR/vocab.json, merges.txt, tokenizer.json (pair merges) and tokenizer-string-merges.json.
"""
import json
import os
import sys

END_OF_TEXT = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (encoder.py): printable Latin-1 bytes map to themselves, the
    others to 256 + n in order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tokenizer_json(vocab, merges, pair_merges=True):
    """The tokenizers library's JSON for a GPT-2 byte-level BPE with <|endoftext|> as its one added token."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
             "fuse_unk": False, "byte_fallback": False}
    if pair_merges:
        model["ignore_merges"] = False
    model["vocab"] = vocab
    model["merges"] = [[left, right] for left, right in merges] if pair_merges else [f"{left} {right}" for left, right in merges]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": vocab[END_OF_TEXT], "content": END_OF_TEXT, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": dict(byte_level, add_prefix_space=True, trim_offsets=False),
        "decoder": dict(byte_level, add_prefix_space=True),
        "model": model,
    }


def write_files(out_dir, vocab, merges, pair_merges=True):
    """vocab.json, merges.txt and tokenizer.json (merges in the pair form, or the older string form) in out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    write_text(os.path.join(out_dir, "vocab.json"), json.dumps(vocab, ensure_ascii=False, separators=(",", ":")))
    write_text(os.path.join(out_dir, "merges.txt"), "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges))
    write_tokenizer_json(os.path.join(out_dir, "tokenizer.json"), vocab, merges, pair_merges)


def write_tokenizer_json(path, vocab, merges, pair_merges):
    write_text(path, json.dumps(tokenizer_json(vocab, merges, pair_merges), ensure_ascii=False, indent=2))


def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def read_openai(encoder_json, vocab_bpe):
    with open(encoder_json, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(vocab_bpe, encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]
    return vocab, merges


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    vocab, merges = read_openai(sys.argv[1], sys.argv[2])
    write_files(sys.argv[3], vocab, merges)
    write_tokenizer_json(os.path.join(sys.argv[3], "tokenizer-string-merges.json"), vocab, merges, pair_merges=False)
    print(f"{sys.argv[3]}: vocab.json ({len(vocab)} tokens), merges.txt ({len(merges)} merges), tokenizer.json, tokenizer-string-merges.json")
