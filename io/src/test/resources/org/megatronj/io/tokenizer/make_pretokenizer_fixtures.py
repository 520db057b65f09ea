"""Makes gpt2-pretokenizer-fixtures.json: GPT-2 pre-tokenizer pieces computed with the very pattern
Megatron-LM's gpt2_tokenization.py compiles, by Python's `regex` module (pip package `regex`).

    python3 make_pretokenizer_fixtures.py > gpt2-pretokenizer-fixtures.json

Covers what JavaScript fixtures cannot: U+0085 and U+FEFF, control characters, and all
whitespace before/after letters, digits and symbols.
"""
import json
import random

import regex

PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

texts = [
    "Hello world", "  two leading", "trailing two  ", "a  b   c    d", "x\n\ny", "x \n y", "x\t \tz",
    "it's it'S IT'S 'sa 're 've 'll 'd 'm 'x '", "''s", "?'s", " 's", "don't", "  's",
    "\u0085next line\u0085", "\ufeffbom", "ctl\x1c\x1d\x1e\x1fchars", "\x00nul\x07bell", "\u00a0nbsp \u00a0 x",
    "\u2028\u2029 \u3000\u3000x", " \u2000\u200a word", "1 2  3   4", " ½ ² Ⅷ", "a1b2 ٣٤ x",
    "e\u0301 combining\u0301\u0301", "emoji 😀 👍🏽x", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "  \n  ", "\n", " ", "",
]
rng = random.Random(1234)
pool = list("ab Z9'sr\n\t .,!?\u0085\ufeff\u00a0\u3000\u2028é中😀\x1c-_") + [" ", " ", "'"]
for _ in range(200):
    texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 40))))

cases = [{"text": t, "pieces": PATTERN.findall(t)} for t in texts]
print(json.dumps({"generator": f"python regex {regex.__version__} via make_pretokenizer_fixtures.py", "cases": cases},
                 ensure_ascii=True))
