#!/usr/bin/env python3
"""Sets Megatron-J's GPU figures beside PyTorch's, measured in the same device call.

Inputs (from one run of ci/gpu-session.sh on the GPU machine):
  torch_anchor.json   ../shared/baselines/gpt_torch_gpu.py's results (GEMM, SDPA, GPT training)
  gpu-kernels.jsonl   bench/src/main/java/org/megatronj/bench/gpu/GpuKernelReport.java
  gpt-gpu.jsonl       bench/gpt-gpu.sh
Writes a Markdown table with the ratios (ours / PyTorch) to stdout or -o FILE.
  bench/gpu-report.py --torch T.json --kernels K.jsonl --train G.jsonl --device "NVIDIA H100 80GB HBM3" -o bench/results/gpu-vs-pytorch.md
"""
import argparse, json, os, sys


def lines(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--torch', required=True)
    ap.add_argument('--kernels')
    ap.add_argument('--train')
    ap.add_argument('--device', default='')
    ap.add_argument('--note', default='')
    ap.add_argument('-o', '--output')
    a = ap.parse_args()
    torch = json.load(open(a.torch))
    ours = {(k['op'], k['shape']): k for k in lines(a.kernels)}
    train = lines(a.train)

    out = ['# Megatron-J on the GPU beside PyTorch', '']
    if a.device:
        out += [f'Device: {a.device}. Both measured in the same device call; medians of CUDA-event-timed runs on random data.', '']
    if a.note:
        out += [a.note, '']

    out += ['Ours are timed two ways: one call per event pair (as the baseline times; the host launch latency of each',
            'call is inside, about 10-40 us through Java and cuBLASLt) and calls queued back to back (what a training step',
            'sees). Ratios are against PyTorch\'s per-call figure.', '']
    fmt = lambda v: f'{v:.0f}' if v else 'n/a'

    def pair(op, shape, ref):
        o = ours.get((op, shape), {})
        one, b2b = o.get('tflops'), o.get('tflops_b2b')
        r1 = f'{one / ref:.2f}x' if one else 'n/a'
        r2 = f'{b2b / ref:.2f}x' if b2b else 'n/a'
        return f'{fmt(one)} ({r1}) | {fmt(b2b)} ({r2})'

    out += ['## bf16 GEMM (TFLOP/s)', '', '| n | PyTorch a @ b | ours NN per call | ours NN back to back | ours NT per call | ours NT back to back |',
            '| ---: | ---: | ---: | ---: | ---: | ---: |']
    for t in (r for r in torch if r['what'] == 'gemm_bf16'):
        n = t['n']
        out.append(f'| {n} | {t["tflops"]:.0f} | {pair("gemm bf16 NN", f"{n}^3", t["tflops"])} | '
                   f'{pair("gemm bf16 NT", f"{n}^3", t["tflops"])} |')

    out += ['', '## Causal attention, bf16 (TFLOP/s; FLOPs = 4·B·H·T²·D/2 forward, 3.5x that forward+backward)', '',
            '| (B, H, T, D) | SDPA fwd | ours fwd per call | ours fwd back to back | SDPA fwd+bwd | ours fwd+bwd per call | ours fwd+bwd back to back |',
            '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for t in (r for r in torch if r['what'] == 'sdpa_flash'):
        key = f'({t["B"]},{t["heads"]},{t["T"]},{t["D"]})'
        out.append(f'| {key} | {t["fwd_tflops"]:.0f} | {pair("flash attention fwd bf16 causal", key, t["fwd_tflops"])} | '
                   f'{t["fwdbwd_tflops"]:.0f} | {pair("flash attention fwd+bwd bf16 causal", key, t["fwdbwd_tflops"])} |')

    if train:
        out += ['', '## GPT training (tokens/s; MFU = (6N + attention) FLOPs per token x tokens/s / 989 TFLOP/s)', '',
                '| model | PyTorch eager | torch.compile | ours | precision | ours / eager | ours / compile | our MFU | our step (ms) |',
                '| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |']
        names = {'124M': 'gpt2-124M', '345M': 'gpt-345M'}
        for r in train:
            tname = names.get(r['model'], r['model'])
            eager = next((t for t in torch if t['what'] == 'train' and t.get('model') == tname and not t['compiled']), {})
            comp = next((t for t in torch if t['what'] == 'train' and t.get('model') == tname and t['compiled']), {})
            if 'tok_s' not in r:
                out.append(f'| {r["model"]} | {eager.get("tok_s", 0):,.0f} | {comp.get("tok_s", 0):,.0f} | failed | {r["precision"]} | | | | |')
                continue
            re_ = r['tok_s'] / eager['tok_s'] if eager.get('tok_s') else 0
            rc_ = r['tok_s'] / comp['tok_s'] if comp.get('tok_s') else 0
            out.append(f'| {r["model"]} | {eager.get("tok_s", 0):,.0f} | {comp.get("tok_s", 0):,.0f} | {r["tok_s"]:,.0f} | '
                       f'{r["precision"]} | {re_:.2f}x | {rc_:.2f}x | {100 * r["mfu_989"]:.1f}% | {r["step_ms"]:.1f} |')
    text = '\n'.join(out) + '\n'
    if a.output:
        tmp = a.output + '.tmp'
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, a.output)
    sys.stdout.write(text)


if __name__ == '__main__':
    main()
