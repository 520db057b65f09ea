"""Expected router outputs for TopKRouterMegatronTest, computed by Megatron-LM's own routing functions.

Run with Debian's python3-torch (1.13) beside a Megatron-LM checkout (here: the bare mirror used in development):

    /usr/bin/python3 make_router_fixtures.py /work/.mirror/NVIDIA+Megatron-LM/repo > router_fixtures.json

The functions (topk_routing_with_score_function, compute_routing_scores_for_aux_loss, switch_load_balancing_loss_func,
z_loss_func, apply_router_token_dropping, get_capacity, sinkhorn) are taken from megatron/core/transformer/moe/
moe_utils.py at the checkout's HEAD and run as they are (only imports stubbed); TopKRouter.routing's combination of them
(z-loss on the logits, routing, capacity, the aux losses on the score function over all experts) is repeated here.
The "position" drop policy is not compared: Megatron keeps torch.topk's choice among equal routing-map entries, which
torch leaves to its implementation (on the CPU it is not the first positions); Megatron-J keeps the first positions,
the policy's documented meaning (MoeLayerTest checks it). Gradients are torch.autograd's of sum(probs * W) + scale * (aux + z) with respect to the logits, the loss the
MoEAuxLossAutoScaler's backward injects.
"""
import ast
import json
import math
import subprocess
import sys
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

NAMES = ["get_capacity", "switch_load_balancing_loss_func", "z_loss_func", "sinkhorn", "group_limited_topk",
         "topk_routing_with_score_function", "compute_routing_scores_for_aux_loss", "apply_router_token_dropping"]


def megatron_functions(repo):
    src = subprocess.run(["git", "-C", repo, "show", "HEAD:megatron/core/transformer/moe/moe_utils.py"],
                         capture_output=True, text=True, check=True).stdout
    tree = ast.parse(src)
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in NAMES]
    for n in body:
        n.decorator_list = []
    module = ast.Module(body=body, type_ignores=[])
    ns = {"torch": torch, "math": math, "Optional": Optional, "Tuple": Tuple, "List": List, "Union": Union,
          "HAVE_TE": False, "is_batch_invariant_mode_enabled": lambda: False, "is_te_min_version": lambda v: False}
    exec(compile(module, "moe_utils.py", "exec"), ns)
    return ns


def case(f, name, n, e, k, batch, logits, score="softmax", pre=False, scaling=None, lb="aux_loss", coeff=0.0,
         zcoeff=None, capacity=None, policy="probs", pad=False, scale=0.5, seed=0, groups=None, group_topk=None,
         bias=None):
    x = torch.tensor(logits, dtype=torch.float32).view(n, e).requires_grad_(True)
    logits_t = x
    z = torch.zeros(())
    if zcoeff is not None:
        z = f["z_loss_func"](logits_t, zcoeff)
    if lb == "sinkhorn":
        with torch.no_grad():
            norm = f["sinkhorn"](logits_t.to(torch.float32))
            _, idx = torch.topk(norm, k=k, dim=1)
        act = torch.sigmoid(logits_t) if k == 1 else torch.softmax(logits_t, dim=-1, dtype=torch.float32)
        rmap = torch.zeros_like(act).int().scatter(1, idx, 1).bool()
        probs = act * rmap
    else:
        probs, rmap = f["topk_routing_with_score_function"](logits_t, k, use_pre_softmax=pre, scaling_factor=scaling,
                                                            score_function=score, num_groups=groups,
                                                            group_topk=group_topk,
                                                            expert_bias=None if bias is None else torch.tensor(bias))
    if capacity is not None:
        probs, rmap = f["apply_router_token_dropping"](probs, rmap, router_topk=k, capacity_factor=capacity,
                                                       drop_policy=policy, pad_to_capacity=pad)
    aux = torch.zeros(())
    if lb in ("aux_loss", "seq_aux_loss") and coeff > 0:
        amap, ascores = f["compute_routing_scores_for_aux_loss"](logits_t, k, score)
        if lb == "aux_loss":
            tpe = amap.sum(dim=0)
            aux = f["switch_load_balancing_loss_func"](ascores, tpe, n, k, e, coeff)
        else:
            seq = n // batch
            s2 = ascores.reshape(seq, -1)
            m2 = amap.reshape(seq, -1)
            aux = f["switch_load_balancing_loss_func"](s2, m2.sum(dim=0), seq, k, e, coeff) / batch
    w = torch.tensor(np.random.default_rng(seed + 1).standard_normal((n, e)), dtype=torch.float32)
    objective = (probs * w).sum() + scale * (aux + z)
    objective.backward()
    return {"name": name, "n": n, "e": e, "k": k, "batch": batch, "logits": logits, "score": score, "pre": pre,
            "scaling": scaling or 0.0, "lb": lb, "coeff": coeff, "zcoeff": zcoeff or 0.0,
            "capacity": capacity or 0.0, "policy": policy, "pad": pad, "scale": scale, "groups": groups or 0,
            "group_topk": group_topk or 0, "bias": bias or [],
            "w": w.flatten().tolist(), "probs": probs.detach().flatten().tolist(),
            "map": rmap.flatten().int().tolist(),
            "aux": (aux / coeff).item() if coeff > 0 else 0.0,
            "z": (z / zcoeff).item() if zcoeff is not None else 0.0,
            "grad": x.grad.flatten().tolist()}


def main():
    f = megatron_functions(sys.argv[1])
    out = []

    def logits(seed, n, e):
        return np.random.default_rng(seed).standard_normal(n * e).astype(np.float32).tolist()

    out.append(case(f, "softmax top-2, aux and z losses", 12, 6, 2, 2, logits(1, 12, 6), coeff=0.01, zcoeff=0.001, seed=1))
    out.append(case(f, "pre-softmax top-1, seq aux loss", 12, 4, 1, 3, logits(2, 12, 4), pre=True, lb="seq_aux_loss",
                    coeff=0.1, seed=2))
    out.append(case(f, "sigmoid top-3, scaling 2.5, aux loss", 10, 8, 3, 2, logits(3, 10, 8), score="sigmoid",
                    scaling=2.5, coeff=0.05, seed=3))
    out.append(case(f, "capacity 0.5, probs policy", 16, 4, 2, 2, logits(4, 16, 4), capacity=0.5, seed=4))
    # padding fills experts with unchosen tokens whose weight is 0: which ones torch.topk picks among the tied zeros is
    # its implementation's choice, and changes no number (the test compares the weights and the rows per expert)
    out.append(case(f, "capacity 0.75, probs policy, padded", 16, 4, 2, 2, logits(5, 16, 4), capacity=0.75,
                    pad=True, seed=5))
    out.append(case(f, "capacity above the tokens", 6, 4, 2, 1, logits(6, 6, 4), capacity=4.0, seed=6))
    out.append(case(f, "sinkhorn top-2", 8, 4, 2, 2, logits(7, 8, 4), lb="sinkhorn", seed=7))
    out.append(case(f, "sinkhorn top-1", 8, 4, 1, 2, logits(8, 8, 4), lb="sinkhorn", seed=8))
    out.append(case(f, "group-limited sigmoid top-4 of 2 of 4 groups, scaling", 10, 8, 4, 2, logits(9, 10, 8),
                    score="sigmoid", scaling=2.5, coeff=0.01, groups=4, group_topk=2, seed=9))
    out.append(case(f, "group-limited softmax top-2 of 2 of 4 groups", 10, 8, 2, 2, logits(10, 10, 8), groups=4,
                    group_topk=2, zcoeff=0.001, seed=10))
    bias = (np.random.default_rng(11).standard_normal(8) * 0.2).astype(np.float32).tolist()
    out.append(case(f, "sigmoid with expert bias, group-limited top-4, scaling", 10, 8, 4, 2, logits(11, 10, 8),
                    score="sigmoid", scaling=2.5, groups=4, group_topk=2, bias=bias, coeff=0.01, seed=11))
    json.dump(out, sys.stdout, indent=0)


if __name__ == "__main__":
    main()
