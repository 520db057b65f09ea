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

    out += ['## bf16 GEMM (TFLOP/s)', '', '| n | PyTorch a @ b | ours NN | ratio | ours NT (linear layers) | ratio |', '| ---: | ---: | ---: | ---: | ---: | ---: |']
    for t in (r for r in torch if r['what'] == 'gemm_bf16'):
        n = t['n']
        nn = ours.get(('gemm bf16 NN', f'{n}^3'), {}).get('tflops')
        nt = ours.get(('gemm bf16 NT', f'{n}^3'), {}).get('tflops')
        fmt = lambda v: f'{v:.0f}' if v else 'n/a'
        ratio = lambda v: f'{v / t["tflops"]:.2f}x' if v else 'n/a'
        out.append(f'| {n} | {t["tflops"]:.0f} | {fmt(nn)} | {ratio(nn)} | {fmt(nt)} | {ratio(nt)} |')

    out += ['', '## Causal attention, bf16 (TFLOP/s; FLOPs = 4·B·H·T²·D/2 forward, 3.5x that forward+backward)', '',
            '| (B, H, T, D) | SDPA fwd | ours fwd | ratio | SDPA fwd+bwd | ours fwd+bwd | ratio |',
            '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for t in (r for r in torch if r['what'] == 'sdpa_flash'):
        key = f'({t["B"]},{t["heads"]},{t["T"]},{t["D"]})'
        f = ours.get(('flash attention fwd bf16 causal', key), {}).get('tflops')
        fb = ours.get(('flash attention fwd+bwd bf16 causal', key), {}).get('tflops')
        out.append(f'| {key} | {t["fwd_tflops"]:.0f} | {f or 0:.1f} | {(f or 0) / t["fwd_tflops"]:.2f}x | '
                   f'{t["fwdbwd_tflops"]:.0f} | {fb or 0:.1f} | {(fb or 0) / t["fwdbwd_tflops"]:.2f}x |')

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
