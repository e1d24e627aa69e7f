#!/usr/bin/env python3
"""The World English Bible as plain text, one verse per line: mod2imp's OSIS export (Debian's sword-text-web,
`mod2imp engWEB2015eb > web.imp`) without markup, footnotes, headings, book introductions or the deuterocanonical books."""
import re
import sys

verse = re.compile(r"^\$\$\$(.+) (\d+):(\d+)$")
# the deuterocanonical books, which the KJV lacks: the text keeps the same 66 books
apocrypha = {"Tobit", "Judith", "Wisdom", "Sirach", "Baruch", "Prayer of Azariah", "Susanna", "Bel and the Dragon",
             "I Maccabees", "II Maccabees", "I Esdras", "Prayer of Manasses", "Additional Psalm", "III Maccabees",
             "II Esdras", "IV Maccabees"}
keep = False
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    m = verse.match(line)
    if m:
        keep = m.group(1) not in apocrypha and int(m.group(2)) > 0 and int(m.group(3)) > 0  # 0 holds introductions
        continue
    if line.startswith("$$$") or not keep:
        continue
    line = line.split('<div canonical="true" eID=')[0]        # a book's end: back matter (the glossary) follows
    line = re.sub(r"<note\b.*?</note>", " ", line)              # footnotes (a space: the marker often sits between two words)
    line = re.sub(r"<title\b.*?</title>", "", line)             # section headings inside a verse
    line = re.sub(r"<[^>]*>", "", line)                          # every other tag; their text stays
    line = re.sub(r"\s+([,.;:!?’”)])", r"\1", " ".join(line.split()))
    if line:
        print(line)
