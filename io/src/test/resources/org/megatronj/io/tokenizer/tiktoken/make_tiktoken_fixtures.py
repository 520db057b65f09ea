"""Makes vocab.json (a tiktoken vocabulary in the JSON layout Megatron's TikTokenizer reads: a list of
{"rank", "token_bytes", "token_str"}) and tiktoken-fixtures.json with OpenAI's `tiktoken` (0.14.0), used as Megatron
uses it:

    pip install tiktoken
    python3 make_tiktoken_fixtures.py <gpt2-vocab.json> <repository>/data/kjv/kjv-genesis-exodus.jsonl

The vocabulary is the 256 bytes, then GPT-2's longer tokens in GPT-2's order (its merge order, so valid BPE ranks) as
raw bytes, 2000 in all. For each text the file holds the ids of today's Megatron TikTokenizer (core: seven default
special tokens, special tokens recognised in the text: encode(allowed_special="all")) for the v1 and v2 patterns, and
of the legacy CustomTikTokenizer (three special tokens, encode_ordinary), with 1000 special tokens, vocab size 3000.
"""
import base64
import json
import random
import sys

import tiktoken

PATTERN_V1 = r"[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"
PATTERN_V2 = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
CORE_SPECIAL = ["<unk>", "<s>", "</s>", "<mask>", "<pad>", "<cls>", "<sep>"]
LEGACY_SPECIAL = ["<unk>", "<s>", "</s>"]
INNER, SPECIALS = 2000, 1000


def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


decoder = byte_decoder()
gpt2 = json.load(open(sys.argv[1], encoding="utf-8"))
tokens = [bytes([b]) for b in range(256)]
for token, _ in sorted(gpt2.items(), key=lambda kv: kv[1]):
    raw = bytes(decoder[c] for c in token)
    if len(raw) > 1 and len(tokens) < INNER:
        tokens.append(raw)
vocab = [{"rank": i, "token_bytes": base64.b64encode(t).decode(), "token_str": t.decode("utf-8", errors="replace")}
         for i, t in enumerate(tokens)]
json.dump(vocab, open("vocab.json", "w"))


def encoding(pattern, specials):
    filler = specials + [f"<SPECIAL_{i}>" for i in range(len(specials), SPECIALS)]
    return tiktoken.Encoding(name="fixture", pat_str=pattern, mergeable_ranks={t: i + SPECIALS for i, t in enumerate(tokens)},
                             special_tokens={t: i for i, t in enumerate(filler)})


core_v1, core_v2, legacy_v2 = encoding(PATTERN_V1, CORE_SPECIAL), encoding(PATTERN_V2, CORE_SPECIAL), encoding(PATTERN_V2, LEGACY_SPECIAL)
corpus = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
texts = [c[:600] for c in corpus[:6]] + [
    "In the beginning God created the heaven and the earth.", "  two leading spaces", "trailing  \n", "a  b   c\t\td",
    "Numbers 1234567 and 3.14, it's they're I'm", "UPPER lower MiXeD CamelCaseWord HTTPServer", "naïve café straße ÆØÅ",
    "日本語 中文 😀 👍🏽", "<s>wrapped</s> and <mask> <SPECIAL_12> < s >", "line\r\nbreaks\n\n\nand / slashes//\n",
    "", " ", "x", "Ω≈ç√∫ ℃ №", "tab\tsep\u00a0nbsp\u2003em",
]
rng = random.Random(20261207)
pool = list("ab Z9'sr\n\t .,!?-é中😀/") + [" the", "LORD", "<s>", "</s>", "Israel", "12", "CamelCase"]
for _ in range(60):
    texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 25))))

cases = []
for t in texts:
    ids = core_v2.encode(t, allowed_special="all")
    cases.append({"text": t, "core_v2": ids, "core_v1": core_v1.encode(t, allowed_special="all"),
                  "legacy_v2": legacy_v2.encode_ordinary(t), "decoded": core_v2.decode(ids)})
for ids in ([1, 1500, 2], [SPECIALS + 200, SPECIALS + 195], [SPECIALS + 0xC3]):
    cases.append({"ids": ids, "decoded": core_v2.decode(ids)})
json.dump({"generator": f"tiktoken {tiktoken.__version__} via make_tiktoken_fixtures.py", "vocab_size": INNER + SPECIALS,
           "num_special_tokens": SPECIALS, "cases": cases}, open("tiktoken-fixtures.json", "w"), ensure_ascii=True)
