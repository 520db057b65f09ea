"""Checks with PyTorch itself that `megatron checkpoint export-torch` writes what torch.load reads (run by hand,
with Debian's python3-torch; CheckpointImportTorchTest checks the same with our reader in every build):

    megatron checkpoint import-torch --load megatron-gpt --save /tmp/imported
    megatron checkpoint export-torch --load /tmp/imported --save /tmp/exported --dtype bf16
    python3 check_torch_export.py /tmp/exported/release/mp_rank_00/model_optim_rng.pt

Every tensor of megatron-gpt's model (expected.json) must come back under its name with the same values.
"""
import json
import sys

import torch

state = torch.load(sys.argv[1], map_location="cpu")
assert state["checkpoint_version"] == 3.0 and state["iteration"] == 0, state.keys()
model = state["model"]
for name, t in json.load(open("expected.json"))["tensors"].items():
    got = model[name]
    assert list(got.shape) == t["shape"], (name, got.shape)
    assert got.float().flatten().tolist() == t["values"], name
args = state["args"]
print(f"ok: {len(model)} entries, args {type(args).__name__} with num_layers={args.num_layers},"
      f" padded_vocab_size={args.padded_vocab_size}, params_dtype={args.params_dtype}")
