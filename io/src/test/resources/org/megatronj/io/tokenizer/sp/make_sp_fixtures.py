"""Makes the SentencePiece test models and sp-fixtures.json with Google's `sentencepiece` library
(0.2.2; Megatron's SentencePiece tokenizers call it):

    pip install sentencepiece
    python3 make_sp_fixtures.py <repository>/data/kjv/kjv-genesis-exodus.jsonl > sp-fixtures.json

bpe.model is trained as Llama 2's tokenizer is (BPE, byte fallback, identity normalization, a dummy
prefix, extra whitespace kept, digits split), plus a user-defined symbol; unigram.model is a
Unigram model with the library's default whitespace handling and no byte fallback (unknown
characters become <unk>). For every model and text the file holds encode_as_ids and decode_ids,
and the decode of a few hand-made id lists (byte pieces that split a character, <unk>, controls).
"""
import io
import json
import random
import sys

import sentencepiece as spm

corpus = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
common = dict(sentence_iterator=iter(corpus), max_sentence_length=1 << 16, normalization_rule_name="identity",
              user_defined_symbols=["<tag>"], control_symbols=["<ctl>"], hard_vocab_limit=False, num_threads=1)
for name, extra in [("bpe", dict(model_type="bpe", vocab_size=600, byte_fallback=True, add_dummy_prefix=True,
                                  remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True)),
                    ("unigram", dict(model_type="unigram", vocab_size=500, byte_fallback=False))]:
    common["sentence_iterator"] = iter(corpus)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(model_writer=model, **common, **extra, minloglevel=2)
    open(f"{name}.model", "wb").write(model.getvalue())

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

out = {"generator": f"sentencepiece {spm.__version__} via make_sp_fixtures.py", "models": {}}
for name in ("bpe", "unigram"):
    sp = spm.SentencePieceProcessor(model_file=f"{name}.model")
    cases = []
    for t in texts:
        ids = sp.encode_as_ids(t)
        cases.append({"text": t, "ids": ids, "decoded": sp.decode_ids(ids)})
    bytes_of = [sp.piece_to_id(f"<0x{b:02X}>") for b in "é".encode()] if name == "bpe" else []
    for ids in ([sp.bos_id(), 10, 20, sp.eos_id()], [sp.unk_id(), 30], bytes_of[:1], bytes_of + [40], [sp.piece_to_id("<ctl>"), 50]):
        if ids:
            cases.append({"ids": ids, "decoded": sp.decode_ids(ids)})
    out["models"][name] = {"vocab_size": sp.vocab_size(), "bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id(),
                           "unk": sp.unk_id(), "cases": cases}
print(json.dumps(out, ensure_ascii=True))
