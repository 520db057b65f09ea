"""Writes two tiny Megatron-LM `--ckpt-format torch_dist` checkpoints with PyTorch's own distributed-checkpoint (DCP)
writer (Debian's python3-torch 1.13, where DCP lives in torch.distributed._shard.checkpoint), from the weights that
make_torch_fixtures.py wrote (run that first; both scripts run from this folder):

    /usr/bin/python3 make_torch_dist_fixtures.py

Megatron-LM's torch_dist save (megatron/core/dist_checkpointing/strategies/torch.py) hands DCP one write item per
ShardedTensor chunk: key = the ShardedTensor's key, global size and the chunk's global offsets (the stacked-layer axis
included), and one bytes item per ShardedObject (torch.save of a list of the objects) under
`<key>/shard_<offsets>_<shape>`. DCP's FileSystemWriter writes each rank's items to `__<rank>_0.distcp` (a tensor
chunk is a whole torch.save zip at its byte range) and the coordinator pickles the `.metadata`. This script does the
same with a SavePlanner that makes those items (torch 1.13 has no API that turns Megatron's chunks into items), saving
from one process per rank over a gloo process group, so the files are what DCP writes for a multi-rank save.

megatron-gpt-dist-tp2pp2/: megatron-gpt-whole's 2-layer model (SwiGLU, GQA, RMSNorm, rope, tied embeddings, TE names)
as 2 tensor x 2 pipeline ranks save it in Megatron-core's default (homogeneous) layout: each layer tensor stacked under
`decoder.layers.<name>` with a leading layer axis, each rank writing chunks [1, ...] at its layer's offset; column-
parallel weights split by rows (linear_fc1 as two chunks per rank: its rows of the gate at tp*F/2 and of the up half
at F + tp*F/2, as apply_swiglu_sharded_factory does), row-parallel ones by columns, replicated ones (norms) written by
tensor rank 0 only (the main replica). final_layernorm is stored fp32, the rest bf16. The run's arguments say
--make-vocab-size-divisible-by 4 and a 26-token NullTokenizer (27 with its eod): padded for 2 tensor ranks the
embedding has 32 rows, 28 without tensor parallelism. Also `_extra_state` objects, Adam moments
(`optimizer.state.exp_avg.*`) and per-rank `rng_state` objects, which an importer skips; common.pt holds the run's
args, iteration and scheduler state; metadata.json names the backend.

megatron-gpt-dist/: make_torch_fixtures.py's 1-layer megatron-gpt model (LayerNorm with biases, GeLU, learned
positions; bf16, fp16 and fp32 tensors) saved by one rank in the non-homogeneous layout (`decoder.layers.0.<name>`,
no layer axis) with the common state inside the DCP as the bytes item `common_state/shard_0_1`, as Megatron-LM saves
since it deprecated common.pt; its .metadata is re-pickled under torch 2.x's class names
(torch.distributed.checkpoint.metadata / .filesystem, Metadata with storage_meta and version) so both namings are
covered.

expected-dist.json lists, per checkpoint, every model key's global shape and dtype.
"""
import argparse
import dataclasses
import enum
import io
import json
import os
import pickle
import shutil
import sys
import tempfile
import types
from collections import OrderedDict

# Debian's torch 1.13 on Python 3.11: torch.distributed._shard's ShardedTensorMetadata has a TensorProperties()
# default, which Python 3.11's dataclasses refuse as mutable (unhashable); make TensorProperties hashable while it loads.
_dataclass = dataclasses.dataclass


def _hashable_tensor_properties(cls=None, **kw):
    if cls is None:
        return lambda c: _hashable_tensor_properties(c, **kw)
    return _dataclass(cls, unsafe_hash=True) if cls.__name__ == "TensorProperties" else _dataclass(cls, **kw)


dataclasses.dataclass = _hashable_tensor_properties
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch.distributed._shard.checkpoint import FileSystemWriter, save_state_dict  # noqa: E402
from torch.distributed._shard.checkpoint.default_planner import DefaultSavePlanner  # noqa: E402
from torch.distributed._shard.checkpoint.metadata import ChunkStorageMetadata, MetadataIndex  # noqa: E402
from torch.distributed._shard.checkpoint.planner import (SavePlan, TensorWriteData, WriteItem,  # noqa: E402
                                                         WriteItemType)
from torch.distributed._shard.sharded_tensor.metadata import TensorProperties  # noqa: E402

dataclasses.dataclass = _dataclass


class ChunkPlanner(DefaultSavePlanner):
    """One rank's write items: (key, global size, global offsets, chunk tensor) tensors and (key, bytes) objects."""

    def __init__(self, chunks, objects):
        self.chunks = chunks
        self.objects = objects

    def create_local_plan(self):
        items = [WriteItem(index=MetadataIndex(key, offsets), type=WriteItemType.SHARD,
                           tensor_data=TensorWriteData(chunk=ChunkStorageMetadata(torch.Size(offsets), t.size()),
                                                       properties=TensorProperties.create_from_tensor(t),
                                                       size=torch.Size(size)))
                 for key, size, offsets, t in self.chunks]
        items += [WriteItem(index=MetadataIndex(key), type=WriteItemType.BYTE_IO) for key in self.objects]
        self.plan = SavePlan(items)
        return self.plan

    def resolve_data(self, item):
        if item.type == WriteItemType.BYTE_IO:
            return io.BytesIO(self.objects[item.index.fqn])
        return next(t for key, _, offsets, t in self.chunks
                    if key == item.index.fqn and torch.Size(offsets) == item.index.offset)


def saved_object(obj):
    """A ShardedObject as Megatron's _mcore_to_torch_sharded_object stores it: torch.save of a list of the objects."""
    buf = io.BytesIO()
    torch.save([obj], buf)
    return buf.getvalue()


def load_model(path):
    return torch.load(path)["model"]


# ---- megatron-gpt-dist-tp2pp2 ---------------------------------------------------------------------------------------
TP, PP, LAYERS = 2, 2, 2
WHOLE = load_model("megatron-gpt-whole/iter_0000020/mp_rank_00/model_optim_rng.pt")
STACKED = ["self_attention.linear_qkv.layer_norm_weight", "self_attention.linear_qkv.weight",
           "self_attention.linear_proj.weight", "mlp.linear_fc1.layer_norm_weight", "mlp.linear_fc1.weight",
           "mlp.linear_fc2.weight"]


def rank_items(tp, pp):
    """The chunks and objects rank (tp, pp) of a TP2 x PP2 save writes: stage pp holds layer pp."""
    chunks, objects = [], {}

    def rows(t, parts, part):
        n = t.shape[0] // parts
        return t[part * n:(part + 1) * n]

    if pp == 0:
        emb = WHOLE["embedding.word_embeddings.weight"]
        chunks.append(("embedding.word_embeddings.weight", list(emb.shape), [tp * emb.shape[0] // TP, 0], rows(emb, TP, tp)))
    layer = pp
    for name in STACKED:
        t = WHOLE[f"decoder.layers.{layer}.{name}"]
        key, size = "decoder.layers." + name, [LAYERS] + list(t.shape)
        if name.endswith("layer_norm_weight"):
            if tp == 0:                                        # replicated over tensor ranks: the main replica writes it
                chunks.append((key, size, [layer, 0], t[None]))
        elif name.endswith("linear_fc1.weight"):               # [gate; up], each half split over the tensor ranks
            half = t.shape[0] // 2
            gate, up = t[:half], t[half:]
            chunks.append((key, size, [layer, tp * half // TP, 0], rows(gate, TP, tp)[None]))
            chunks.append((key, size, [layer, half + tp * half // TP, 0], rows(up, TP, tp)[None]))
        elif name.endswith("linear_qkv.weight"):               # column-parallel: rows (by query group)
            chunks.append((key, size, [layer, tp * t.shape[0] // TP, 0], rows(t, TP, tp)[None]))
        else:                                                  # row-parallel: columns
            n = t.shape[1] // TP
            chunks.append((key, size, [layer, 0, tp * n], t[:, tp * n:(tp + 1) * n][None]))
        if name.endswith("linear_qkv.weight"):                 # Adam's first moment, fp32, sharded as its parameter
            moment = chunks[-1][3].float() / 8
            chunks.append(("optimizer.state.exp_avg." + key, size, chunks[-1][2], moment))
    if tp == 0:
        for module in ["self_attention.core_attention", "self_attention.linear_qkv", "self_attention.linear_proj",
                       "mlp.linear_fc1", "mlp.linear_fc2"]:
            objects[f"decoder.layers.{module}._extra_state/shard_{layer}_{LAYERS}"] = saved_object(
                torch.tensor([layer, 8], dtype=torch.uint8))
    if pp == PP - 1 and tp == 0:
        norm = WHOLE["decoder.final_layernorm.weight"].float()
        chunks.append(("decoder.final_layernorm.weight", list(norm.shape), [0], norm))
    objects[f"rng_state/shard_{pp}.{tp}_{PP}.{TP}"] = saved_object({"random_rng_state": (3, (pp, tp), None)})
    return chunks, objects


def args_namespace(**overrides):
    base = dict(
        num_layers=LAYERS, hidden_size=16, ffn_hidden_size=32, num_attention_heads=4, kv_channels=4,
        group_query_attention=True, num_query_groups=2, seq_length=8, max_position_embeddings=8,
        position_embedding_type="rope", rotary_percent=1.0, rotary_base=10000, normalization="RMSNorm", swiglu=True,
        add_bias_linear=False, add_qkv_bias=False, qk_layernorm=False, untie_embeddings_and_output_weights=False,
        layernorm_epsilon=1e-5, apply_layernorm_1p=False, bias_gelu_fusion=False, openai_gelu=False, squared_relu=False,
        padded_vocab_size=32, make_vocab_size_divisible_by=4, tokenizer_type="NullTokenizer", vocab_size=26,
        vocab_file=None, merge_file=None, tokenizer_model=None, init_method_std=0.02, hidden_dropout=0.1,
        attention_dropout=0.1, params_dtype=torch.bfloat16, bf16=True, fp16=False, tensor_model_parallel_size=TP,
        pipeline_model_parallel_size=PP, virtual_pipeline_model_parallel_size=None, ckpt_format="torch_dist",
        transformer_impl="transformer_engine", micro_batch_size=2, global_batch_size=4, lr=3e-4, train_iters=100,
        seed=1234, iteration=20, consumed_train_samples=80, use_dist_ckpt=True)
    base.update(overrides)
    return argparse.Namespace(**base)


def save_rank(rank, world, folder, store):
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    tp, pp = rank % TP, rank // TP                             # Megatron's rank order: tensor ranks adjacent
    chunks, objects = rank_items(tp, pp)
    save_state_dict({}, FileSystemWriter(folder, single_file_per_rank=True), planner=ChunkPlanner(chunks, objects))
    dist.destroy_process_group()


def write_tp2pp2(root):
    shutil.rmtree(root, ignore_errors=True)
    folder = os.path.join(root, "iter_0000020")
    store = tempfile.mktemp(prefix="dcp-store-")
    mp.spawn(save_rank, args=(TP * PP, folder, store), nprocs=TP * PP, join=True)
    common = {"args": args_namespace(), "checkpoint_version": 3.0, "iteration": 20,
              "opt_param_scheduler": {"max_lr": 3e-4, "num_steps": 80}, "num_floating_point_operations_so_far": 2.5e9}
    torch.save(common, os.path.join(folder, "common.pt"))
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump({"sharded_backend": "torch_dist", "sharded_backend_version": 1, "common_backend": "torch",
                   "common_backend_version": 1}, f)
    with open(os.path.join(root, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("20")


# ---- megatron-gpt-dist ----------------------------------------------------------------------------------------------
def write_single(root):
    shutil.rmtree(root, ignore_errors=True)
    folder = os.path.join(root, "iter_0000010")
    source = torch.load("megatron-gpt/iter_0000010/mp_rank_00/model_optim_rng.pt")
    chunks, objects = [], {}
    for name, t in source["model"].items():
        if name.endswith("._extra_state"):
            objects[f"{name}/shard_0_1"] = saved_object(None)
        else:
            t = t.contiguous()
            chunks.append((name, list(t.shape), [0] * t.dim(), t))
    common = {"args": source["args"], "checkpoint_version": 3.0, "iteration": 10,
              "num_floating_point_operations_so_far": 1.5e12}
    vars(common["args"]).update(ckpt_format="torch_dist", use_dist_ckpt=True)
    objects["common_state/shard_0_1"] = saved_object(common)
    save_state_dict({}, FileSystemWriter(folder, single_file_per_rank=True), planner=ChunkPlanner(chunks, objects),
                    no_dist=True)
    repickle_as_torch2(os.path.join(folder, ".metadata"))
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump({"sharded_backend": "torch_dist", "sharded_backend_version": 1}, f)
    with open(os.path.join(root, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("10")


def repickle_as_torch2(path):
    """The .metadata as torch >= 2.4 pickles it: its classes from torch.distributed.checkpoint.metadata/.filesystem."""
    md_module = types.ModuleType("torch.distributed.checkpoint.metadata")
    fs_module = types.ModuleType("torch.distributed.checkpoint.filesystem")
    sys.modules.setdefault("torch.distributed.checkpoint", types.ModuleType("torch.distributed.checkpoint"))
    sys.modules[md_module.__name__], sys.modules[fs_module.__name__] = md_module, fs_module

    def define(module, cls):
        cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
        setattr(module, cls.__name__, cls)
        return cls

    class _MEM_FORMAT_ENCODING(enum.Enum):
        TORCH_CONTIGUOUS_FORMAT = 0
    define(md_module, _MEM_FORMAT_ENCODING)

    class TensorProperties:
        def __init__(self, dtype):
            self.dtype = dtype

        def __getstate__(self):
            return (self.dtype, torch.strided, False, _MEM_FORMAT_ENCODING.TORCH_CONTIGUOUS_FORMAT, False)

    class _StorageInfo:
        def __init__(self, relative_path, offset, length):
            self.relative_path, self.offset, self.length = relative_path, offset, length

    classes = {c: define(md_module, type(c, (), {})) for c in
               ["Metadata", "TensorStorageMetadata", "ChunkStorageMetadata", "BytesStorageMetadata", "MetadataIndex",
                "StorageMeta"]}
    define(md_module, TensorProperties)
    define(fs_module, _StorageInfo)

    def new(name, **fields):
        o = classes[name]()
        o.__dict__.update(fields)
        return o

    with open(path, "rb") as f:
        old = pickle.load(f)
    md = {}
    for key, item in old.state_dict_metadata.items():
        if hasattr(item, "chunks"):
            md[key] = new("TensorStorageMetadata", properties=TensorProperties(item.properties.dtype), size=item.size,
                          chunks=[new("ChunkStorageMetadata", offsets=c.offsets, sizes=c.sizes) for c in item.chunks])
        else:
            md[key] = new("BytesStorageMetadata")
    storage = {new("MetadataIndex", fqn=i.fqn, offset=i.offset, index=i.index):
               _StorageInfo(s.relative_path, s.offset, s.length) for i, s in old.storage_data.items()}
    meta = new("Metadata", state_dict_metadata=md, planner_data=None, storage_data=storage,
               storage_meta=new("StorageMeta", checkpoint_id=None, save_id="fixture", load_id=None, modules=[]),
               version="1.0.0")
    with open(path, "wb") as f:
        pickle.dump(meta, f)


def model_keys(folder):
    with open(os.path.join(folder, ".metadata"), "rb") as f:
        md = pickle.load(f)
    return {k: {"shape": list(v.size), "dtype": str(v.properties.dtype), "chunks": len(v.chunks)}
            for k, v in sorted(md.state_dict_metadata.items()) if hasattr(v, "chunks")}


if __name__ == "__main__":
    write_tp2pp2("megatron-gpt-dist-tp2pp2")
    expected = {"generator": f"torch {torch.__version__} via make_torch_dist_fixtures.py",
                "megatron-gpt-dist-tp2pp2": model_keys("megatron-gpt-dist-tp2pp2/iter_0000020")}
    write_single("megatron-gpt-dist")
    with open("expected-dist.json", "w") as f:
        json.dump(expected, f, indent=1)
