#!/usr/bin/env python3
"""Writes bench/results/gpt-train-cpu.{csv,md} from the runs bench/gpt-cpu.sh recorded.
Arguments: runs.tsv out-dir start-time load-before load-after cpu-name jdk-version pairs.
runs.tsv: impl, config, pair, max RSS KiB, process wall s, JSON line of the run (tab-separated)."""
import csv, json, os, statistics, sys
raw, out, start, load0, load1, cpu, jdk, pairs = sys.argv[1:]
QUIET = 0.10
rows = []
for line in open(raw):
    impl, cfg, pair, rss_kb, wall, js = line.rstrip('\n').split('\t', 5)
    j = json.loads(js)
    rows.append(dict(run=start, impl=impl, config=cfg, pair=int(pair), tok_s=j['tok_s'], step_s=j['step_s'], gflops=j['gflops'],
                     other_max=j.get('other_max'), max_rss_mb=int(rss_kb) / 1024, process_wall_s=float(wall),
                     loss=j.get('loss'), offheap_total_mb=j.get('offheap_total_mb'), cpu_s=j.get('cpu_s'),
                     load=j.get('load')))
fields = list(rows[0].keys())
tmp = os.path.join(out, '.gpt-train-cpu.csv.tmp')
with open(tmp, 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=fields); w.writeheader(); w.writerows(rows)
os.replace(tmp, os.path.join(out, 'gpt-train-cpu.csv'))

ref = {'A': 703, 'B': 420, 'C': 102}
md = ['# fp32 GPT training throughput on CPU: Megatron-J vs PyTorch 1.13 + OpenBLAS', '',
      f'Made by `bench/gpt-cpu.sh` on {start}: {cpu}, {os.cpu_count()} processors, 2 threads each side; {jdk}.',
      f'PyTorch\'s OpenBLAS ran its {os.environ.get("OPENBLAS_CORE", "unknown")} kernels ('
      + (f'forced by OPENBLAS_CORETYPE={os.environ["OPENBLAS_CORETYPE"]}' if os.environ.get('OPENBLAS_CORETYPE')
         else 'its own choice for this CPU') + ').',
      f'Load average (1/5/15 min) before the runs {load0}, after {load1}: the machine was shared, so absolute',
      'figures are far below what an idle machine gives; the ratio of runs taken back to back is the figure that counts.',
      f'Each config: {pairs} pairs of runs, the two programs alternating (pytorch, megatron-j, then megatron-j, pytorch, ...).',
      'One iteration = zero grads + forward + loss + backward + AdamW step on a fixed random micro-batch (vocab 50304,',
      'dropout 0, tied head); tokens/s = micro-batch x seq / median iteration time. Peak RSS: /usr/bin/time\'s maximum',
      'resident set of the whole process (Python + torch, or the JVM). Ratio = median over pairs of (Megatron-J / PyTorch).', '',
      'CPU-normalised tok/s = tokens x 2 threads / own CPU seconds of an iteration: what 2 fully owned cores would give',
      'with perfect scaling; it discounts the time the scheduler gave to other processes (OpenMP spin-waiting, which',
      'the loaded machine makes long, still counts against PyTorch in it).', '',
      f'Quiet pairs: pairs in which neither run saw other processes take {QUIET:.0%} or more of the machine in any timed',
      'iteration; their ratio is the closest to the idle-machine comparison the goal means.', '',
      '| config | model | PyTorch tok/s | Megatron-J tok/s | ratio, all pairs (goal >= 1.5) | ratio, quiet pairs | PyTorch CPU-norm. tok/s | Megatron-J CPU-norm. tok/s | CPU-norm. ratio | PyTorch peak RSS MB | Megatron-J peak RSS MB | Megatron-J GFLOP/s | PyTorch idle-machine tok/s (README) |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
shapes = {'A': '4L h256 4 heads, s256 mb4', 'B': '6L h384 6 heads, s256 mb8', 'C': '12L h768 12 heads, s512 mb1 (GPT-2 124M)'}
for cfg in sorted({r['config'] for r in rows}):
    t = [r for r in rows if r['config'] == cfg and r['impl'] == 'pytorch']
    m = [r for r in rows if r['config'] == cfg and r['impl'] == 'megatron-j']
    ratios = [mr['tok_s'] / tr['tok_s'] for tr in t for mr in m if tr['pair'] == mr['pair']]
    quiet = [mr['tok_s'] / tr['tok_s'] for tr in t for mr in m
             if tr['pair'] == mr['pair'] and tr['other_max'] < QUIET and mr['other_max'] < QUIET]
    quiet_text = ', '.join('%.2fx' % x for x in quiet) if quiet else 'none'
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    tokens = {'A': 1024, 'B': 2048, 'C': 512}[cfg]
    cpu_tok = lambda rs: [tokens * 2 / r['cpu_s'] if r['cpu_s'] else float('nan') for r in rs]
    cpu_ratios = [a / b for a, b in zip(cpu_tok(sorted(m, key=lambda r: r['pair'])), cpu_tok(sorted(t, key=lambda r: r['pair'])))]
    md.append(f"| {cfg} | {shapes[cfg]} | {med(t, 'tok_s'):.0f} | {med(m, 'tok_s'):.0f} | "
              f"{statistics.median(ratios):.2f}x ({', '.join('%.2f' % x for x in ratios)}) | {quiet_text} | "
              f"{statistics.median(cpu_tok(t)):.0f} | {statistics.median(cpu_tok(m)):.0f} | {statistics.median(cpu_ratios):.2f}x | "
              f"{max(r['max_rss_mb'] for r in t):.0f} | "
              f"{max(r['max_rss_mb'] for r in m):.0f} | {med(m, 'gflops'):.1f} | {ref[cfg]} |")
md += ['', 'Megatron-J ran with -XX:+UseParallelGC -XX:MaxInlineLevel=32 (as ./megatron) and -Xmx' + os.environ.get('JAVA_HEAP', '512m')
       + ': its live heap is a few MB but it allocates short-lived arrays every iteration, and with the',
       "JVM's default heap sizing (a quarter of RAM) the young generation alone grows past 1 GB resident.", '',
       'Per run (other = largest share of the machine other processes used during one timed iteration):', '',
       '| config | pair | program | tok/s | ms/iter | own CPU s/iter | other | peak RSS MB | final loss |',
       '|---|---:|---|---:|---:|---:|---:|---:|---:|']
for r in rows:
    cpu_s = '' if r['cpu_s'] is None else '%.2f' % r['cpu_s']
    md.append(f"| {r['config']} | {r['pair']} | {r['impl']} | {r['tok_s']:.0f} | {1000 * r['step_s']:.0f} | {cpu_s} | "
              f"{r['other_max']:.2f} | {r['max_rss_mb']:.0f} | {r['loss']:.3f} |")
tmp = os.path.join(out, '.gpt-train-cpu.md.tmp')
with open(tmp, 'w') as f:
    f.write('\n'.join(md) + '\n')
os.replace(tmp, os.path.join(out, 'gpt-train-cpu.md'))
print('\n'.join(md))
