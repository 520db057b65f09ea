#!/usr/bin/python3
"""Independent NumPy reference for Megatron-J's --mock-data samples (writes mock-fixtures.json next to itself).

Re-implements Megatron-LM's MockGPTLowLevelDataset (megatron/core/datasets/gpt_dataset.py, main at
d98e8a64dd, 2026-08-22): 100,000 sequences, lengths default_rng(seed=0).integers(low=1, high=4096,
dtype=int32), sequence = (arange(length - 1) + 1) % vocab_size then EOD; split "1,1,1" as
BlendedMegatronDatasetConfig forces for mock data; indices from reference/make_fixtures.py (GPTDataset's
algorithm); samples as GPTDataset._query_document_sample_shuffle_indices assembles them.

Run with Debian's NumPy (python3-numpy):  /usr/bin/python3 make_mock_fixtures.py
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
from make_fixtures import build, split_matrix, split_range  # noqa: E402


class MockLowLevel:
    def __init__(self, vocab_size, eod):
        self.vocab_size, self.eod = vocab_size, eod
        self.sequence_lengths = np.random.default_rng(seed=0).integers(low=1, high=4096, size=100000, dtype=np.int32)

    def get(self, idx, offset=0, length=None):
        n = self.sequence_lengths[idx]
        sample = np.int64(np.concatenate([(np.arange(n - 1) + 1) % self.vocab_size, [self.eod]]))
        if length is None:
            length = n - offset
        return sample[offset:offset + length]


def text(ds, d, s, sh, idx, seq_len, pad=-1):
    idx = sh[idx]
    b, ob = s[idx]
    e, oe = s[idx + 1]
    if b == e:
        parts = [ds.get(d[b], offset=ob, length=oe - ob + 1)]
    else:
        parts = [ds.get(d[i], offset=ob if i == b else 0, length=None if i < e else oe + 1) for i in range(b, e + 1)]
    t = np.concatenate(parts)
    if len(t) < seq_len + 1:
        t = np.concatenate([t, np.full(seq_len + 1 - len(t), pad)])
    return [int(x) for x in t]


def main():
    cases = []
    for name, vocab, eod, seq_len, seed, split_name, num_samples in [
            ("gpt2", 50257, 50256, 64, 1234, "train", 160),
            ("null", 1001, 1000, 1024, 3, "valid", None)]:
        ds = MockLowLevel(vocab, eod)
        which = ["train", "valid", "test"].index(split_name)
        begin, end = split_range(split_matrix("1,1,1"), which, len(ds.sequence_lengths))
        d, s, sh, epochs, _ = build(ds.sequence_lengths, begin, end, num_samples, seq_len, seed)
        cases.append(dict(name=name, vocab_size=vocab, eod=eod, seq_length=seq_len, seed=seed, split=split_name,
                          num_samples=num_samples, begin=begin, end=end, size=int(sh.shape[0]),
                          samples=[text(ds, d, s, sh, i, seq_len) for i in range(4)]))
    with open(os.path.join(HERE, "mock-fixtures.json"), "w") as f:
        json.dump(dict(numpy_version=np.__version__, cases=cases), f)


if __name__ == "__main__":
    main()
