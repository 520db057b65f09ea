"""Pipeline layer splits as Megatron-LM computes them, for PipelineLayoutTest.

Runs Megatron-LM's own functions, taken unchanged from its source: get_num_layers_to_build
(transformer_block.py), get_transformer_layer_offset (transformer_layer.py), is_vp_first_stage /
is_vp_last_stage (pipeline_parallel/utils.py) and PipelineParallelLayerLayout
(pipeline_parallel_layer_layout.py), with parallel_state stubbed to the rank asked for. Writes, for each
configuration, every (pipeline rank, virtual stage)'s layer count and offset.

    python3 make_pipeline_layout_fixtures.py /path/to/Megatron-LM > pipeline_layout_fixtures.json
"""
import ast
import enum
import json
import re
import sys
import types
from pathlib import Path
from typing import Optional

root = Path(sys.argv[1])


def functions(path, names):
    tree = ast.parse((root / path).read_text())
    return [ast.get_source_segment((root / path).read_text(), n) for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]


class LayerType(enum.Enum):
    encoder = 1
    decoder = 2
    embedding = 3
    loss = 4
    mtp = 5


state = types.SimpleNamespace(pp_rank=0, vp_size=None)
parallel_state = types.SimpleNamespace(
    get_pipeline_model_parallel_rank=lambda: state.pp_rank,
    get_virtual_pipeline_model_parallel_world_size=lambda: state.vp_size)
env = {"Optional": Optional, "LayerType": LayerType, "parallel_state": parallel_state, "re": re, "copy": __import__("copy"),
       "logging": __import__("logging"), "logger": __import__("logging").getLogger("x"), "lru_cache": __import__("functools").lru_cache,
       "safe_get_rank": lambda: 0, "TransformerConfig": object}
for src in functions("megatron/core/pipeline_parallel/utils.py", {"is_vp_first_stage", "is_vp_last_stage"}):
    exec(src, env)
utils = types.ModuleType("megatron.core.pipeline_parallel.utils")
utils.is_vp_first_stage = env["is_vp_first_stage"]
utils.is_vp_last_stage = env["is_vp_last_stage"]
sys.modules["megatron"] = types.ModuleType("megatron")
sys.modules["megatron.core"] = types.ModuleType("megatron.core")
sys.modules["megatron.core.pipeline_parallel"] = types.ModuleType("megatron.core.pipeline_parallel")
sys.modules["megatron.core.pipeline_parallel.utils"] = utils
for path, names in [("megatron/core/transformer/transformer_block.py", {"get_num_layers_to_build"}),
                    ("megatron/core/transformer/transformer_layer.py", {"get_transformer_layer_offset"}),
                    ("megatron/core/transformer/pipeline_parallel_layer_layout.py", {"PipelineParallelLayerLayout"})]:
    for src in functions(path, names):
        exec(src, env)


def config(num_layers, pp, vp=None, first=None, last=None, emb=False, loss=False, layout=None):
    c = types.SimpleNamespace(num_layers=num_layers, pipeline_model_parallel_size=pp,
                              virtual_pipeline_model_parallel_size=vp, num_layers_in_first_pipeline_stage=first,
                              num_layers_in_last_pipeline_stage=last, account_for_embedding_in_pipeline_split=emb,
                              account_for_loss_in_pipeline_split=loss, pipeline_model_parallel_layout=None)
    if layout is not None:
        c.pipeline_model_parallel_layout = env["PipelineParallelLayerLayout"](layout, pp)
        c.pipeline_model_parallel_layout.validate_layer_layout(num_layers, None)
        detected = c.pipeline_model_parallel_layout.virtual_pipeline_model_parallel_size
        c.virtual_pipeline_model_parallel_size = detected if detected > 1 else None
    return c


cases = [
    dict(num_layers=8, pp=2),
    dict(num_layers=8, pp=2, vp=2),
    dict(num_layers=10, pp=4, first=1, last=3),
    dict(num_layers=9, pp=3, first=3),
    dict(num_layers=7, pp=3, last=1),
    dict(num_layers=5, pp=2, first=2, last=3),
    dict(num_layers=16, pp=4, vp=2, first=2, last=6),
    dict(num_layers=14, pp=3, vp=2, first=2),
    dict(num_layers=7, pp=4, emb=True),
    dict(num_layers=6, pp=4, emb=True, loss=True),
    dict(num_layers=10, pp=2, vp=2, emb=True, loss=True),
    dict(num_layers=7, pp=2, loss=True),
    dict(num_layers=6, pp=2, layout="Et*2|t*3|t|L"),
    dict(num_layers=8, pp=2, layout="Et|(tt|)*2,t*3L"),
    dict(num_layers=4, pp=2, layout="E|t*2|t*2|L"),
    dict(num_layers=5, pp=1, layout="Et*5L"),
]
out = []
for case in cases:
    c = config(**case)
    vp = c.virtual_pipeline_model_parallel_size
    state.vp_size = vp
    stages = []
    for v in range(vp or 1):
        for p in range(c.pipeline_model_parallel_size):
            state.pp_rank = p
            vp_stage = v if vp is not None else None
            n = env["get_num_layers_to_build"](c, vp_stage=vp_stage, pp_rank=p)
            offset = env["get_transformer_layer_offset"](c, vp_stage=vp_stage, pp_rank=p)
            stages.append({"pp_rank": p, "vp_stage": v, "num_layers": n, "offset": offset})
    out.append({"case": case, "virtual_stages_per_rank": vp or 1, "stages": stages})
layouts = {s: env["PipelineParallelLayerLayout"].parse_str_to_list(s)
           for s in ["Ettt|(tt|)*29,m|L", "Et*3|(tt|)*2,L", "(Et|)*2,t*3L", "E|t*2,t|L"]}
json.dump({"splits": out, "parsed": {k: ["".join(x.name[0].upper() if x.name in ("embedding", "loss") else
                                              "t" if x.name == "decoder" else "m" for x in stage) for stage in v]
                                      for k, v in layouts.items()}}, sys.stdout, indent=1)
print()
