#!/usr/bin/python3
"""References for the text preprocessing toolkit (tests/Nabla.Tests/Text/Preprocessing/*Tests.cs), from tools
written independently of Nabla.

Fixtures/text/:
  - porter_vocabulary.tsv.gz: Martin Porter's published sample vocabulary (voc.txt, 23,531 words) and his
    expected output (output.txt), as shipped in the test folder of npm `porter-stemmer` 0.9.1 (Porter's own
    JavaScript); "word<TAB>stem" per line. The script also checks that porter.js itself reproduces output.txt.
  - porter_wordnet.tsv.gz: a further 6,000 words (every 10th single-word WordNet 3.0 lemma of Debian's
    wordnet-base that is not in the vocabulary above) stemmed by porter.js under node.
  - stopwords_eng.txt: the English list (`eng`) of npm `stopword` 3.1.5, one word a line, in its order.
  - wordnet_lemmas.tsv.gz: "word<TAB>pos<TAB>lemma" from NLTK 3.8's WordNetLemmatizer (WordNet's morphy) reading
    Debian's WordNet 3.0 files, for every 6th word of Porter's vocabulary, each as noun, verb, adjective and adverb.

Needs npm (registry access), node, Debian's wordnet-base and python3-nltk:
    apt-get install -y wordnet-base python3-nltk
    /usr/bin/python3 tests/reference/make_text_preprocessing_fixtures.py
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import warnings

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "text")
WORDNET = "/usr/share/wordnet"


def npm_package(work, spec):
    """Unpacks an npm package into work/NAME and returns the path of its package/ folder."""
    name = spec.split("@")[0]
    target = os.path.join(work, name)
    os.makedirs(target)
    tarball = subprocess.run(["npm", "pack", "--silent", spec], cwd=target, check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["tar", "xzf", tarball], cwd=target, check=True)
    return os.path.join(target, "package")


def write_gzip_tsv(name, rows):
    # mtime=0 keeps the file byte-identical across runs.
    with open(os.path.join(OUT, name), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write("".join("\t".join(row) + "\n" for row in rows).encode("utf-8"))
    print(f"{name}: {len(rows)} rows")


def node_stems(porter_js, words):
    script = ("const stem = require(process.argv[1]).stemmer;"
              "const words = require('fs').readFileSync(0, 'utf8').split('\\n').filter(w => w.length);"
              "process.stdout.write(words.map(w => stem(w)).join('\\n') + '\\n');")
    out = subprocess.run(["node", "-e", script, porter_js], input="\n".join(words) + "\n", check=True, capture_output=True, text=True).stdout
    return out.split("\n")[:-1]


def wordnet_lemmas():
    """Single-word lemmas of all four index files, letters only."""
    lemmas = set()
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(WORDNET, "index." + pos), encoding="utf-8") as f:
            for line in f:
                if line.startswith(" "):
                    continue
                lemma = line.split(" ", 1)[0]
                if lemma.isalpha() and lemma.isascii():
                    lemmas.add(lemma)
    return sorted(lemmas)


def nltk_wordnet(work):
    """NLTK's reader over Debian's files. Debian leaves out `lexnames` (only the names of the lexicographer files,
    which morphy does not use), so a placeholder goes into a folder of links next to the real files."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    root = os.path.join(work, "wordnet")
    os.makedirs(root)
    for name in os.listdir(WORDNET):
        os.symlink(os.path.join(WORDNET, name), os.path.join(root, name))
    with open(os.path.join(root, "lexnames"), "w") as f:
        f.write("".join(f"{i:02d}\tlexfile{i}\t0\n" for i in range(45)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not needed
        return WordNetCorpusReader(root, None)


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        porter = npm_package(work, "porter-stemmer@0.9.1")
        with open(os.path.join(porter, "test", "input.txt")) as f:
            vocabulary = f.read().split()
        with open(os.path.join(porter, "test", "output.txt")) as f:
            expected = f.read().split()
        assert len(vocabulary) == len(expected) == 23531, (len(vocabulary), len(expected))
        porter_js = os.path.join(porter, "porter.js")
        mismatches = sum(a != b for a, b in zip(node_stems(porter_js, vocabulary), expected))
        print(f"porter.js vs Porter's output.txt: {mismatches} mismatches of {len(vocabulary)}")
        write_gzip_tsv("porter_vocabulary.tsv.gz", list(zip(vocabulary, expected)))

        known = set(vocabulary)
        extra = [w for w in wordnet_lemmas() if w not in known][::10][:6000]
        write_gzip_tsv("porter_wordnet.tsv.gz", list(zip(extra, node_stems(porter_js, extra))))

        stopword = npm_package(work, "stopword@3.1.5")
        eng = json.loads(subprocess.run(["node", "-e", "process.stdout.write(JSON.stringify(require(process.argv[1]).eng))", stopword],
                                        check=True, capture_output=True, text=True).stdout)
        with open(os.path.join(OUT, "stopwords_eng.txt"), "w") as f:
            f.write("".join(w + "\n" for w in eng))
        print(f"stopwords_eng.txt: {len(eng)} words")

        wn = nltk_wordnet(work)
        # nltk.stem.WordNetLemmatizer.lemmatize is `min(wn._morphy(word, pos), key=len)` (the word itself when that is
        # empty) over the module-level corpus, which is not installed here: the same line over this reader.
        rows = []
        for word in vocabulary[::6]:
            for pos in ("n", "v", "a", "r"):
                lemmas = wn._morphy(word, pos)
                rows.append((word, pos, min(lemmas, key=len) if lemmas else word))
        write_gzip_tsv("wordnet_lemmas.tsv.gz", rows)


if __name__ == "__main__":
    sys.exit(main())
