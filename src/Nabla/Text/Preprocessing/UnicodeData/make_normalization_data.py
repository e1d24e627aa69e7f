#!/usr/bin/python3
"""Writes normalization.txt.gz, the Unicode Character Database facts that UnicodeNormalizer.cs needs, from Debian's
`unicode-data` package (Unicode 15.0: /usr/share/unicode). Lines, code points in hex:
    D <cp> <c|k> <cp> ...   decomposition mapping (c: canonical, k: compatibility), from UnicodeData.txt field 5
    C <cp> <class>          non-zero canonical combining class, from UnicodeData.txt field 3
    X <cp>                  Full_Composition_Exclusion, from DerivedNormalizationProps.txt
Hangul syllables are left out: the normalizer decomposes and composes them arithmetically (Unicode §3.12).

    apt-get install -y unicode-data
    /usr/bin/python3 src/Nabla/Text/Preprocessing/UnicodeData/make_normalization_data.py
"""
import gzip
import os

UCD = "/usr/share/unicode"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "normalization.txt.gz")


def unicode_data_rows():
    """UnicodeData.txt rows, with the First/Last ranges (CJK, Hangul, ...) left as their two ends: none of those
    ranges has a decomposition mapping or a non-zero combining class."""
    with open(os.path.join(UCD, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            yield int(fields[0], 16), fields


def main():
    lines = []
    for cp, fields in unicode_data_rows():
        if 0xAC00 <= cp <= 0xD7A3:
            continue
        if fields[3] != "0":
            lines.append(f"C {cp:X} {fields[3]}")
        mapping = fields[5]
        if mapping:
            kind = "c"
            if mapping.startswith("<"):
                kind = "k"
                mapping = mapping.split(">", 1)[1].strip()
            lines.append(f"D {cp:X} {kind} {mapping}")
    with open(os.path.join(UCD, "DerivedNormalizationProps.txt"), encoding="utf-8") as f:
        for line in f:
            data = line.split("#", 1)[0].strip()
            if not data:
                continue
            codes, prop = [x.strip() for x in data.split(";")[:2]]
            if prop != "Full_Composition_Exclusion":
                continue
            first, _, last = codes.partition("..")
            for cp in range(int(first, 16), int(last or first, 16) + 1):
                lines.append(f"X {cp:X}")
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
    print(f"{OUT}: {len(lines)} lines, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
