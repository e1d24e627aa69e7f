import sys
# The Jargon File's lines whose characters all occur in the KJV, after mapping typographic quotes, braces,
# brackets, no-break spaces and dashes to the KJV's ASCII: text whose every byte the KJV base has trained on.
kjv = set(open(sys.argv[1], encoding="utf-8").read())
table = str.maketrans({"{": "", "}": "", "[": "(", "]": ")", "‘": "'", "’": "'", "“": "'", "”": "'", "\u00a0": " ", "—": "-"})
text = open(sys.argv[2], encoding="utf-8").read().translate(table)
sys.stdout.write("".join(line for line in text.splitlines(keepends=True) if set(line) <= kjv))
