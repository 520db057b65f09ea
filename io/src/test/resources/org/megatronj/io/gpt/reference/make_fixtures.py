#!/usr/bin/python3
"""Independent NumPy reference for Megatron-J's GPT sample indices, blending indices and cache descriptions.

Re-implements, in Python with numpy.random.RandomState, what Megatron-LM (megatron/core/datasets:
gpt_dataset.py, helpers.cpp, blended_dataset.py, blended_megatron_dataset_builder.py,
megatron_dataset.py) does, and saves the arrays with numpy.save, so the Java tests can compare bytes.

Run with Debian's NumPy (python3-numpy):  /usr/bin/python3 make_fixtures.py   (writes next to itself)
"""
import hashlib
import json
import math
import os
from collections import OrderedDict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def split_matrix(split):
    import re
    v = list(map(float, re.findall(r"[.0-9]+", split)))
    v = v + [0.0] * (3 - len(v))
    w = np.array(v, dtype=np.float64)
    v = (w / np.sum(w)).tolist()
    exp = [0]
    for x in v:
        exp.append(exp[-1] + x)
    out = []
    for a, b in zip(exp[:-1], exp[1:]):
        out.append(None if b <= a else (a, b))
    return out


def split_range(matrix, i, n):
    if matrix[i] is None:
        return None
    return int(round(matrix[i][0] * float(n))), int(round(matrix[i][1] * float(n)))


def num_epochs(tokens_per_epoch, num_samples, seq_len, x):
    if num_samples is None:
        return 1
    epochs, tokens = 1, tokens_per_epoch
    while tokens < num_samples * seq_len + x:
        epochs += 1
        tokens += tokens_per_epoch
    return epochs


def document_index(docs, epochs, rng, separate):
    if not separate or epochs == 1:
        d = np.mgrid[0:epochs, 0:len(docs)][1]
        d[:] = docs
        d = d.reshape(-1).astype(np.int32)
        rng.shuffle(d)
        return d
    first = document_index(docs, epochs - 1, rng, False)
    last = document_index(docs, 1, rng, False)
    return np.concatenate((first, last))


def sample_index(sizes, doc_idx, seq_len, epochs, tokens_per_epoch, drop_last, x):
    if drop_last:
        n = (epochs * tokens_per_epoch - x) // seq_len
    else:
        n = int(math.ceil(float(np.float32(epochs * tokens_per_epoch - x) / np.float32(seq_len))))
    out = np.zeros((n + 1, 2), dtype=np.int32)
    p, o = 0, 0
    for r in range(1, n + 1):
        need = seq_len + x
        while need != 0:
            avail = int(sizes[doc_idx[p]]) - o
            need -= avail
            if need <= 0:
                o += need + avail - x
                need = 0
            else:
                if p == len(doc_idx) - 1:
                    o = int(sizes[doc_idx[p]]) - x
                    break
                p += 1
                o = 0
        out[r] = (p, o)
    return out


def shuffle_index(first, total, rng):
    dtype = np.uint32 if total < np.iinfo(np.uint32).max - 1 else np.int64
    a = np.arange(0, first, dtype=dtype)
    rng.shuffle(a)
    if first == total:
        return a
    b = np.arange(first, total, dtype=dtype)
    rng.shuffle(b)
    return np.concatenate((a, b))


def build(sizes, begin, end, num_samples, seq_len, seed, add_extra=True, drop_last=True):
    x = 1 if add_extra else 0
    docs = np.arange(begin, end, dtype=np.int32)
    t = int(np.sum(sizes[docs]))
    e = num_epochs(t, num_samples, seq_len, x)
    separate = False
    sans = None
    if e > 1:
        sans = ((e - 1) * t - x) // seq_len
        final = num_samples - sans
        per = (t - x) // seq_len
        separate = final < int(0.80 * per)
    rng = np.random.RandomState(seed)
    d = document_index(docs, e, rng, separate)
    s = sample_index(sizes, d, seq_len, e, t, drop_last, x)
    sh = shuffle_index(sans if separate else s.shape[0] - 1, s.shape[0] - 1, rng)
    return d, s, sh, e, separate


def blending_indices(weights, size):
    di = np.zeros(size, dtype=np.int16)
    dsi = np.zeros(size, dtype=np.int64)
    counts = [0] * len(weights)
    for i in range(size):
        m = max(float(i), 1.0)
        best, best_err = 0, weights[0] * m - counts[0]
        for k in range(1, len(weights)):
            err = weights[k] * m - counts[k]
            if err > best_err:
                best, best_err = k, err
        di[i] = best
        dsi[i] = counts[best]
        counts[best] += 1
    return di, dsi


def gpt2_tokenizer_identity(vocab, merge):
    """megatron.core.tokenizers (main, Aug 2026) GPT2BPETokenizer unique_identifiers."""
    return OrderedDict([
        ("class", "megatron.core.tokenizers.text.text_tokenizer.MegatronTokenizerText"),
        ("tokenizer_path", "GPT2BPETokenizer"),
        ("additional_special_tokens", str([])),
        ("vocab_file", str(vocab)),
        ("merges_file", str(merge)),
        ("use_fast", str(True)),
        ("trust_remote_code", str(False)),
        ("include_special_tokens", str(True)),
        ("use_gigatoken", str(False)),
    ])


class Tok:
    def __init__(self, ids):
        self.unique_identifiers = ids


def gpt_description(path, num_samples, split_name, seed, seq_len, split, matrix, tokenizer):
    u = OrderedDict()
    u["class"] = "GPTDataset"
    u["dataset_path"] = path
    u["num_samples"] = num_samples
    u["index_split"] = split_name
    u["random_seed"] = seed
    u["sequence_length"] = seq_len
    u["split"] = split
    u["split_matrix"] = matrix
    u["tokenizer"] = tokenizer
    return u


def dumps(obj):
    return json.dumps(obj, indent=4, default=lambda o: o.unique_identifiers)


def normalize(w):
    w = np.array(w, dtype=np.float64)
    return (w / np.sum(w)).tolist()


def main():
    cases = []
    rng = np.random.RandomState(20260101)

    def save(name, arr):
        np.save(os.path.join(HERE, name), arr, allow_pickle=True)

    def add(name, sizes, split, seq_len, seed, samples, add_extra=True, drop_last_valid=True):
        save(f"{name}-lengths.npy", sizes)
        matrix = split_matrix(split)
        for i, sp in enumerate(["train", "valid", "test"]):
            r = split_range(matrix, i, len(sizes))
            if r is None or r[0] == r[1] or samples[i] is None and False:
                continue
            drop = drop_last_valid if sp == "valid" else True
            d, s, sh, e, sep = build(sizes, r[0], r[1], samples[i], seq_len, seed, add_extra, drop)
            save(f"{name}-{sp}-document_index.npy", d)
            save(f"{name}-{sp}-sample_index.npy", s)
            save(f"{name}-{sp}-shuffle_index.npy", sh)
            cases.append(OrderedDict(name=name, split=split, index_split=sp, begin=r[0], end=r[1],
                                     seq_length=seq_len, seed=seed, num_samples=samples[i],
                                     add_extra_token=add_extra, drop_last=drop, epochs=e, separate=sep))

    # 1: 50 sequences, Megatron's usual split (test is empty: [50, 50)), multi-epoch training
    sizes = rng.randint(1, 300, size=50).astype(np.int32)
    add("small", sizes, "949,50,1", 128, 1234, [1000, 20, 5])
    # 2: same lengths, no extra token, other seed, one epoch (no sample count)
    add("noextra", sizes, "80,20", 64, 42, [None, None, None], add_extra=False)
    # 3: separate-last-epoch example of MEGATRON-FORMATS.md: T = 49041, L = 128, 1000 samples
    sizes = rng.randint(1, 1600, size=50).astype(np.int32)
    sizes[-1] += 49041 - int(sizes.sum())
    assert sizes[-1] > 0
    add("separate", sizes, "1", 128, 1234, [1000, None, None])
    # 4: empty sequences inside, a valid split keeping its last partial sample
    sizes = rng.randint(0, 40, size=200).astype(np.int32)
    sizes[::7] = 0
    add("zeros", sizes, "90,10,0", 16, 7, [3000, 300, None], drop_last_valid=False)
    # 5: long sequences, short samples, many samples in one epoch
    sizes = rng.randint(500, 5000, size=30).astype(np.int32)
    add("long", sizes, "98,2", 32, 1234, [2000, 10, None])

    # blending indices
    blends = []
    for name, weights, size in [("blend2", [0.3, 0.7], 1000), ("blend3", [5.0, 1.0, 2.5], 777),
                                ("blend9", [float(w) for w in rng.randint(1, 50, size=9)], 2500)]:
        w = normalize(normalize(weights))
        di, dsi = blending_indices(w, size)
        save(f"{name}-dataset_index.npy", di)
        save(f"{name}-dataset_sample_index.npy", dsi)
        blends.append(OrderedDict(name=name, weights=weights, size=size))

    # cache descriptions and their md5
    descriptions = []
    tok = Tok(gpt2_tokenizer_identity("/data/gpt2-vocab.json", "/data/gpt2-merges.txt"))
    for path, samples, sp, split in [("/data/owt_text_document", 1000, "train", "949,50,1"),
                                     ("/data/owt_text_document", 20, "valid", "949,50,1"),
                                     ("data/x_text_document", None, "test", "969, 30, 1"),
                                     ("/d/a", 5, "train", "0,1,0")]:
        u = gpt_description(path, samples, sp, 1234, 1024, split, split_matrix(split), tok)
        text = dumps(u)
        descriptions.append(OrderedDict(kind="gpt", path=path, num_samples=samples, index_split=sp, split=split,
                                        seed=1234, seq_length=1024, text=text,
                                        md5=hashlib.md5(text.encode("utf-8")).hexdigest()))
    # a blend of two datasets, 0.3 A 0.7 B, train 1000 / valid 20 / test 5
    weights = normalize([0.3, 0.7])
    sizes_target = [[int(math.ceil(math.ceil(t * w) * (1 + 0.0))) for t in (1000, 20, 5)] for w in weights]
    sizes_buffer = [[int(math.ceil(math.ceil(t * w) * (1 + 0.005))) for t in (1000, 20, 5)] for w in weights]
    parts = [gpt_description(p, sizes_buffer[k][0], "train", 1234, 1024, "949,50,1", split_matrix("949,50,1"), tok)
             for k, p in enumerate(["/data/A", "/data/B"])]
    b = OrderedDict()
    b["class"] = "BlendedDataset"
    b["datasets"] = parts
    b["split"] = "train"
    b["weights"] = normalize(weights)
    b["size"] = sum(list(zip(*sizes_target))[0])
    text = dumps(b)
    descriptions.append(OrderedDict(kind="blend", text=text, md5=hashlib.md5(text.encode("utf-8")).hexdigest(),
                                    sizes_target=sizes_target, sizes_buffer=sizes_buffer))

    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(OrderedDict(numpy_version=np.__version__, gpt=cases, blends=blends, descriptions=descriptions), f, indent=1)


if __name__ == "__main__":
    main()
