#!/usr/bin/env bash
# bench/gpt-cpu.sh: fp32 GPT training throughput on the CPU, Megatron-J against the PyTorch baseline
# (/work/shared/baselines/gpt_torch_cpu.py: PyTorch 1.13 + OpenBLAS OpenMP, 2 threads), measured side
# by side in one run: for each config, PAIRS pairs of runs, the two programs alternating (A B B A ...).
# Writes bench/results/gpt-train-cpu.md (table) and gpt-train-cpu.csv (one row per run).
#   bench/gpt-cpu.sh                          configs A B C, 2 pairs each (about 25-40 min on a busy machine)
#   CONFIGS="A" PAIRS=3 bench/gpt-cpu.sh      a subset / more pairs
#   MEGATRON_BUILD_DIR=target-x               build into / run from another output folder
#   MEGATRON_JAVA_OPTS=...                    extra JVM options (as for ./megatron)
#   BASELINES=/path/to/baselines              where gpt_torch_cpu.py and quiet.py live
#   RESULTS_DIR=/some/dir                     write the report there instead of bench/results
# Iterations per run (warm-up/timed): A 2/5, B 2/4, C 1/3; override with STEPS_A="2 5" etc.
# Sets up the baseline as its README says: python3-torch from apt, OpenBLAS's OpenMP build unpacked
# into /tmp/openblas, LD_LIBRARY_PATH to it, OMP_NUM_THREADS=2.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=../ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME

CONFIGS="${CONFIGS:-A B C}"
PAIRS="${PAIRS:-2}"
THREADS=2
BASELINES="${BASELINES:-/work/shared/baselines}"
BUILD_DIR="${MEGATRON_BUILD_DIR:-target}"
JAR="$ROOT/bench/$BUILD_DIR/megatron-bench.jar"
OUT="${RESULTS_DIR:-$ROOT/bench/results}"
OPENBLAS_DIR=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp
# The model's live heap is a few MB, but it allocates ~1 GB of short-lived arrays per iteration; with the
# JVM's default heap sizing (1/4 of RAM) the young generation grows to gigabytes of resident memory.
JAVA_HEAP="${JAVA_HEAP:-512m}"
declare -A STEPS=([A]="${STEPS_A:-2 5}" [B]="${STEPS_B:-2 4}" [C]="${STEPS_C:-1 3}")

log() { echo "gpt-cpu.sh: $*" >&2; }

# ---------------------------------------------------------------- baseline set-up (baselines/README.md)
[[ -f "$BASELINES/gpt_torch_cpu.py" && -f "$BASELINES/quiet.py" ]] \
  || { log "no gpt_torch_cpu.py and quiet.py in $BASELINES (set BASELINES)"; exit 1; }
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  log "installing python3-torch (PyTorch 1.13)..."
  apt-get -o DPkg::Lock::Timeout=900 install -y python3-torch >&2
fi
if [[ ! -f "$OPENBLAS_DIR/libblas.so.3" ]]; then
  log "unpacking OpenBLAS (OpenMP build) into /tmp/openblas..."
  dl="$(mktemp -d)"
  (cd "$dl" && apt-get download libopenblas0-openmp >&2 && dpkg -x libopenblas0-openmp_*.deb /tmp/openblas)
  rm -rf "$dl"
fi

# ---------------------------------------------------------------- Megatron-J build
if [[ ! -f "$JAR" || -n "$(find "$ROOT" -path "$ROOT/.git" -prune -o \( -name '*.java' -o -name 'pom.xml' \) \
    -newer "$JAR" -print -quit 2>/dev/null)" ]]; then
  log "building the benchmark jar ($BUILD_DIR)..."
  if command -v mvn >/dev/null 2>&1; then MVN=(mvn -o); else MVN=("$ROOT/mvnw"); fi
  (cd "$ROOT" && "${MVN[@]}" -B -q -Dmaven.test.skip=true -Dbuild.dir="$BUILD_DIR" -pl bench -am package)
fi

# ---------------------------------------------------------------- timing on a shared machine
# quiet.py waits (up to 10 min per try, 12 tries) for an idle machine before each timed step; a machine
# shared by several engineers is never idle, so the baseline runs from a scratch folder where its own
# file is a link and quiet.py is a stand-in with the same contention measurement but no waiting and
# QUIET_TRIES tries. Megatron-J times itself the same way (GptTrainBenchmark --tries, ContentionMeter).
WORK="$(mktemp -d /tmp/gpt-cpu.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ln -s "$BASELINES/gpt_torch_cpu.py" "$WORK/gpt_torch_cpu.py"
cat > "$WORK/quiet.py" <<EOF
import importlib.util, os, sys
_spec = importlib.util.spec_from_file_location('quiet_original', '$BASELINES/quiet.py')
_q = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_q)
_q.wait_quiet = lambda thresh=0.10, max_wait=0: 0.0      # never idle here: measure, do not wait
def timed(fn, reps=1, other_max=0.04, tries=int(os.environ.get('QUIET_TRIES', '1'))):
    m0 = _q._self()
    dt, other, k = _q.timed(fn, reps, other_max, tries)
    # own CPU seconds of the timed region(s), for the per-CPU-second figure (stderr: the JSON stays the baseline's)
    print('quiet-cpu %.4f %d' % ((_q._self() - m0) / _q._CLK / k, k), file=sys.stderr, flush=True)
    return dt, other, k
load = _q.load
EOF

RAW="$WORK/runs.tsv"          # impl, config, pair, max RSS KiB, wall s, JSON line
: > "$RAW"

run_torch() { # config pair warmup steps
  local json rss
  LD_LIBRARY_PATH="$OPENBLAS_DIR" OMP_NUM_THREADS=$THREADS QUIET_TRIES=1 /usr/bin/time -f '%M %e' -o "$WORK/time" \
    /usr/bin/python3 "$WORK/gpt_torch_cpu.py" --config "$1" --threads $THREADS --warmup "$3" --steps "$4" \
    > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err" >&2; log "PyTorch run failed ($1)"; exit 1; }
  # own CPU seconds per timed iteration (median), from the quiet.py stand-in, merged into the JSON line
  cpu="$(awk '$1 == "quiet-cpu" {print $2}' "$WORK/err" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')"
  json="$(grep '^{' "$WORK/out" | sed "s/}\$/, \"cpu_s\": ${cpu:-null}}/")"
  printf 'pytorch\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(tr ' ' '\t' < "$WORK/time")" "$json" >> "$RAW"
  log "  pytorch    $1 pair $2: $(grep -o '"tok_s": [0-9.]*' <<< "$json")"
}

run_megatron() { # config pair warmup steps
  local json
  # shellcheck disable=SC2086
  /usr/bin/time -f '%M %e' -o "$WORK/time" "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector \
    --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC -Xmx"$JAVA_HEAP" ${MEGATRON_JAVA_OPTS:-} \
    -cp "$JAR:$ROOT/bench/$BUILD_DIR/lib/*" org.megatronj.bench.GptTrainBenchmark --config "$1" \
    --threads $THREADS --warmup "$3" --steps "$4" --tries 1 > "$WORK/out" 2> "$WORK/err" \
    || { cat "$WORK/err" >&2; log "Megatron-J run failed ($1)"; exit 1; }
  json="$(grep '^{' "$WORK/out")"
  printf 'megatron-j\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(tr ' ' '\t' < "$WORK/time")" "$json" >> "$RAW"
  log "  megatron-j $1 pair $2: $(grep -o '"tok_s": [0-9.]*' <<< "$json")"
}

START="$(date -u '+%Y-%m-%d %H:%M UTC')"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for cfg in $CONFIGS; do
  [[ -n "${STEPS[$cfg]:-}" ]] || { log "unknown config '$cfg' (expected A, B or C)"; exit 1; }
  read -r warmup steps <<< "${STEPS[$cfg]}"
  log "config $cfg: $PAIRS pairs, $warmup warm-up + $steps timed iterations per run (load $(cut -d' ' -f1 /proc/loadavg))"
  for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2)); then   # A B, then B A: drift in the machine's load cancels over two pairs
      run_torch "$cfg" "$p" "$warmup" "$steps"; run_megatron "$cfg" "$p" "$warmup" "$steps"
    else
      run_megatron "$cfg" "$p" "$warmup" "$steps"; run_torch "$cfg" "$p" "$warmup" "$steps"
    fi
  done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report
mkdir -p "$OUT"
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
JAVA_HEAP="$JAVA_HEAP" /usr/bin/python3 - "$RAW" "$OUT" "$START" "$LOAD_BEFORE" "$LOAD_AFTER" "$CPU" "$("$JAVA_HOME/bin/java" -version 2>&1 | head -1)" \
    "$PAIRS" <<'EOF'
import csv, json, os, statistics, sys
raw, out, start, load0, load1, cpu, jdk, pairs = sys.argv[1:]
rows = []
for line in open(raw):
    impl, cfg, pair, rss_kb, wall, js = line.rstrip('\n').split('\t', 5)
    j = json.loads(js)
    rows.append(dict(impl=impl, config=cfg, pair=int(pair), tok_s=j['tok_s'], step_s=j['step_s'], gflops=j['gflops'],
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
      f'Load average (1/5/15 min) before the runs {load0}, after {load1}: the machine was shared, so absolute',
      'figures are far below what an idle machine gives; the ratio of runs taken back to back is the figure that counts.',
      f'Each config: {pairs} pairs of runs, the two programs alternating (pytorch, megatron-j, then megatron-j, pytorch, ...).',
      'One iteration = zero grads + forward + loss + backward + AdamW step on a fixed random micro-batch (vocab 50304,',
      'dropout 0, tied head); tokens/s = micro-batch x seq / median iteration time. Peak RSS: /usr/bin/time\'s maximum',
      'resident set of the whole process (Python + torch, or the JVM). Ratio = median over pairs of (Megatron-J / PyTorch).', '',
      'CPU-normalised tok/s = tokens x 2 threads / own CPU seconds of an iteration: what 2 fully owned cores would give',
      'with perfect scaling; it discounts the time the scheduler gave to other processes (OpenMP spin-waiting, which',
      'the loaded machine makes long, still counts against PyTorch in it).', '',
      '| config | model | PyTorch tok/s | Megatron-J tok/s | ratio (goal >= 1.5) | PyTorch CPU-norm. tok/s | Megatron-J CPU-norm. tok/s | CPU-norm. ratio | PyTorch peak RSS MB | Megatron-J peak RSS MB | Megatron-J GFLOP/s | PyTorch idle-machine tok/s (README) |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
shapes = {'A': '4L h256 4 heads, s256 mb4', 'B': '6L h384 6 heads, s256 mb8', 'C': '12L h768 12 heads, s512 mb1 (GPT-2 124M)'}
for cfg in sorted({r['config'] for r in rows}):
    t = [r for r in rows if r['config'] == cfg and r['impl'] == 'pytorch']
    m = [r for r in rows if r['config'] == cfg and r['impl'] == 'megatron-j']
    ratios = [mr['tok_s'] / tr['tok_s'] for tr in t for mr in m if tr['pair'] == mr['pair']]
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    tokens = {'A': 1024, 'B': 2048, 'C': 512}[cfg]
    cpu_tok = lambda rs: [tokens * 2 / r['cpu_s'] if r['cpu_s'] else float('nan') for r in rs]
    cpu_ratios = [a / b for a, b in zip(cpu_tok(sorted(m, key=lambda r: r['pair'])), cpu_tok(sorted(t, key=lambda r: r['pair'])))]
    md.append(f"| {cfg} | {shapes[cfg]} | {med(t, 'tok_s'):.0f} | {med(m, 'tok_s'):.0f} | "
              f"{statistics.median(ratios):.2f}x ({', '.join('%.2f' % x for x in ratios)}) | "
              f"{statistics.median(cpu_tok(t)):.0f} | {statistics.median(cpu_tok(m)):.0f} | {statistics.median(cpu_ratios):.2f}x | "
              f"{max(r['max_rss_mb'] for r in t):.0f} | "
              f"{max(r['max_rss_mb'] for r in m):.0f} | {med(m, 'gflops'):.1f} | {ref[cfg]} |")
md += ['', 'Megatron-J ran with -XX:+UseParallelGC (as ./megatron) and -Xmx' + os.environ.get('JAVA_HEAP', '512m')
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
EOF
