#!/usr/bin/python3
"""NumPy's own numbers for Pcg64Test: numpy.random.default_rng(seed) draws (SeedSequence -> PCG64).

Run with Debian's NumPy (python3-numpy):  /usr/bin/python3 make_pcg64_fixtures.py   (writes pcg64-fixtures.json next to itself)
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    # Megatron's MockGPTLowLevelDataset: default_rng(seed=0).integers(low=1, high=4096, size=100000, dtype=int32)
    lengths = np.random.default_rng(seed=0).integers(low=1, high=4096, size=100000, dtype=np.int32)
    picks = [0, 1, 2, 3, 33332, 33333, 66666, 66667, 99998, 99999]
    cases = []
    for seed, low, high, size in [(1234, 0, 10, 64), (7, -5, 1000000007, 32), (2**32 + 3, 0, 2**31 - 1, 16), (0, 3, 4, 4)]:
        v = np.random.default_rng(seed).integers(low=low, high=high, size=size, dtype=np.int32)
        cases.append(dict(seed=seed, low=low, high=high, values=[int(x) for x in v]))
    raw = [str(int(x)) for x in np.random.default_rng(0).bit_generator.random_raw(4)]
    state = [str(int(x)) for x in np.random.SeedSequence(0).generate_state(4, np.uint64)]
    out = dict(numpy_version=np.__version__,
               mock_lengths_first=[int(x) for x in lengths[:64]],
               mock_lengths_picks={str(i): int(lengths[i]) for i in picks},
               mock_lengths_sum=int(np.sum(lengths, dtype=np.int64)),
               integers=cases,
               seed0_raw_uint64=raw,
               seed0_seed_sequence_uint64=state)
    with open(os.path.join(HERE, "pcg64-fixtures.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
