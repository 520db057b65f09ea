"""Makes the SentencePiece test models and sp-fixtures.json with Google's `sentencepiece` library
(0.2.2; Megatron's SentencePiece tokenizers call it):

    pip install sentencepiece
    python3 make_sp_fixtures.py <repository>/data/kjv/kjv-genesis-exodus.jsonl > sp-fixtures.json

bpe.model is trained as Llama 2's tokenizer is (BPE, byte fallback, identity normalization, a dummy
prefix, extra whitespace kept, digits split), plus a user-defined symbol; unigram.model is a
Unigram model with the library's default whitespace handling and no byte fallback (unknown
characters become <unk>). Two have a precompiled normalization map: nfkc.model is that Unigram
model with the library's default rule, nmt_nfkc (as T5's; the map alone is 240 KB), and user-defined
symbols that the map would change (they are kept as they are); rules.model is a BPE model with byte
fallback, a small map of our own (NORMALIZATION_RULES: multi-character keys that share prefixes,
deletions, replacements with spaces in them), no dummy prefix and extra whitespace kept. For every
model and text the file holds encode_as_ids and decode_ids, and the decode of a few hand-made id
lists (byte pieces that split a character, <unk>, controls).
"""
import io
import json
import os
import random
import sys

import sentencepiece as spm

corpus = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
# source code points, a tab, the replacement's (none: a deletion)
NORMALIZATION_RULES = """3000\t20
A0\t20
9\t20
FB01\t66 69
2460\t28 31 29
65 301\tE9
71\t6B
71 75\t6B 77
71 75 61\t6B 77 61
2028\t20 20
200B\t
AD\t
2E3A\t20 2D 20
1F600\t3A 29
"""
RULES_FILE = "rules.tsv"   # the model records its name (normalization_rule_tsv), so not a temporary one's
open(RULES_FILE, "w", encoding="utf-8").write(NORMALIZATION_RULES)

common = dict(max_sentence_length=1 << 16, normalization_rule_name="identity", user_defined_symbols=["<tag>"],
              control_symbols=["<ctl>"], hard_vocab_limit=False, num_threads=1)
for name, extra in [("bpe", dict(model_type="bpe", vocab_size=600, byte_fallback=True, add_dummy_prefix=True,
                                  remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True)),
                    ("unigram", dict(model_type="unigram", vocab_size=500, byte_fallback=False)),
                    ("nfkc", dict(model_type="unigram", vocab_size=500, byte_fallback=False, normalization_rule_name="nmt_nfkc",
                                  user_defined_symbols=["<tag>", "\ufb01", "\u2460"])),
                    ("rules", dict(model_type="bpe", vocab_size=400, byte_fallback=True, normalization_rule_tsv=RULES_FILE,
                                   add_dummy_prefix=False, remove_extra_whitespaces=False,
                                   user_defined_symbols=["<tag>", "\ufb01"]))]:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=model, **{**common, **extra}, minloglevel=2)
    open(f"{name}.model", "wb").write(model.getvalue())
os.remove(RULES_FILE)

texts = [
    "In the beginning God created the heaven and the earth.", "  two leading spaces", "trailing  ", "a  b   c",
    "Numbers 1234567 and 3.14", "tabs\tand\nnewlines\n\n", "UPPER lower MiXeD", "naïve café straße ÆØÅ",
    "日本語 中文 😀 👍🏽", "<tag>wrapped<tag> and < tag >", "<ctl> is control", "", " ", "x", "▁already▁escaped",
    "Moses said unto the LORD, Behold, the children of Israel have not hearkened unto me;",
    "eee", "eeeee", "lll", "sss sss", "ooo", "lllll ll", "thee eee see",   # equal-score merges: the leftmost first
]
rng = random.Random(20261207)
pool = list("ab Z9'sr\n\t .,!?-é中😀") + [" ", " ", "the", "LORD", "<tag>", "Israel", "12"]
for _ in range(60):
    texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 25))))
# what the maps change: full-width forms, ligatures, compatibility characters, other spaces (as whitespace
# after the map), combining sequences, half-width katakana, controls, and the rules' own keys
texts += [
    "\uff21\uff22\uff23\uff11\uff12\uff13 \uff48\uff45\uff41\uff56\uff45\uff4e", "\ufb01ne \ufb01\ufb01 \ufb02ow \ufb00", "\u2460\u2461\u2473 \u2122 \u3300 \u33a1 \u2474",
    "\u3000\u00a0 lead\u3000\u3000x\u00a0 y \u00a0", "a\u00a0\u00a0b\u2003c\u2002\u2009d\u3000", "\u3000", "\u00a0 \u3000",
    "e\u0301 \u00e9 e\u0301\u0301 cafe\u0301", "\uff76\uff80\uff76\uff85 \uff8a\uff9f \uff73\uff9e", "a\x01b\x07c\x7fd\x85e\u200bf\ufeffg\u00adh",
    "a\tb\nc\rd\x0be\x0cf", "\x00x", "a \u00a8b \u00a8 \u00b4\u00b4", " \u00a8", "\u2025\u2026 \u00bd \u2153 x\u00b2 H\u2082O \u00b5 \u212b",
    "\u0130 \u1e9e \u00df \u03a3 \u2163 \u00aa", "<tag>\ufb01<tag> \uff1ctag\uff1e", "quaint quit q qu", "x\u2e3ay \U0001F600 \u2028z\u2028\u2028",
    "\ufb01\u3000\ufb01", "\U0001d400\U0001d41a \u2160\u2161", "\u2474\u2475 \u24b6 \u3251",
]

out = {"generator": f"sentencepiece {spm.__version__} via make_sp_fixtures.py", "models": {}}
for name in ("bpe", "unigram", "nfkc", "rules"):
    sp = spm.SentencePieceProcessor(model_file=f"{name}.model")
    cases = []
    for t in texts:
        ids = sp.encode_as_ids(t)
        cases.append({"text": t, "ids": ids, "decoded": sp.decode_ids(ids)})
    bytes_of = [sp.piece_to_id(f"<0x{b:02X}>") for b in "é".encode()] if name in ("bpe", "rules") else []
    for ids in ([sp.bos_id(), 10, 20, sp.eos_id()], [sp.unk_id(), 30], bytes_of[:1], bytes_of + [40], [sp.piece_to_id("<ctl>"), 50]):
        if ids:
            cases.append({"ids": ids, "decoded": sp.decode_ids(ids)})
    out["models"][name] = {"vocab_size": sp.vocab_size(), "bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id(),
                           "unk": sp.unk_id(), "cases": cases}
print(json.dumps(out, ensure_ascii=True))
