#!/usr/bin/env bash
# bench/gpt-cpu.sh: fp32 GPT training throughput on the CPU, Megatron-J against the PyTorch baseline
# (/work/shared/baselines/gpt_torch_cpu.py: PyTorch 1.13 + OpenBLAS OpenMP, 2 threads), measured side
# by side in one run: for each config, PAIRS pairs of runs, the two programs alternating (A B B A ...).
# Writes bench/results/gpt-train-cpu.md (table) and gpt-train-cpu.csv (one row per run; bench/gpt-cpu-report.py).
#   bench/gpt-cpu.sh                          configs A B C, 3 pairs each (about 10 min idle, 25 min at load 8)
#   CONFIGS="A" PAIRS=3 bench/gpt-cpu.sh      a subset / more pairs
#   MEGATRON_BUILD_DIR=target-x               build into / run from another output folder
#   MEGATRON_JAVA_OPTS=...                    extra JVM options (as for ./megatron)
#   BASELINES=/path/to/baselines              where gpt_torch_cpu.py and quiet.py live
#   RESULTS_DIR=/some/dir                     write the report there instead of bench/results
#   OPENBLAS_CORETYPE=SkylakeX                force OpenBLAS's kernels (its own choice is named in the report: OpenBLAS
#                                             0.3.21 takes a CPU it does not know, e.g. Zen 5, for Haswell, AVX2 only)
# Iterations per run (warm-up/timed): A 3/5, B 3/4, C 2/3 (3 warm-up = the baseline's default); STEPS_A="3 5" etc.
# Sets up the baseline as its README says: python3-torch from apt, OpenBLAS's OpenMP build unpacked
# into /tmp/openblas, LD_LIBRARY_PATH to it, OMP_NUM_THREADS=2.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=../ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME

CONFIGS="${CONFIGS:-A B C}"
PAIRS="${PAIRS:-3}"
THREADS=2
BASELINES="${BASELINES:-/work/shared/baselines}"
BUILD_DIR="${MEGATRON_BUILD_DIR:-target}"
JAR="$ROOT/bench/$BUILD_DIR/megatron-bench.jar"
OUT="${RESULTS_DIR:-$ROOT/bench/results}"
OPENBLAS_DIR=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp
# The model's live heap is a few MB, but it allocates ~1 GB of short-lived arrays per iteration; with the
# JVM's default heap sizing (1/4 of RAM) the young generation grows to gigabytes of resident memory.
JAVA_HEAP="${JAVA_HEAP:-512m}"
declare -A STEPS=([A]="${STEPS_A:-3 5}" [B]="${STEPS_B:-3 4}" [C]="${STEPS_C:-2 3}")

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
    --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC -XX:MaxInlineLevel=32 -Xmx"$JAVA_HEAP" ${MEGATRON_JAVA_OPTS:-} \
    -cp "$JAR:$ROOT/bench/$BUILD_DIR/lib/*" org.megatronj.bench.GptTrainBenchmark --config "$1" \
    --threads $THREADS --warmup "$3" --steps "$4" --tries 1 > "$WORK/out" 2> "$WORK/err" \
    || { cat "$WORK/err" >&2; log "Megatron-J run failed ($1)"; exit 1; }
  json="$(grep '^{' "$WORK/out")"
  printf 'megatron-j\t%s\t%s\t%s\t%s\n' "$1" "$2" "$(tr ' ' '\t' < "$WORK/time")" "$json" >> "$RAW"
  log "  megatron-j $1 pair $2: $(grep -o '"tok_s": [0-9.]*' <<< "$json")"
}

# the kernels OpenBLAS picked for this CPU, for the report: a CPU newer than the library gets an older core's
OPENBLAS_CORE="$(LD_LIBRARY_PATH="$OPENBLAS_DIR" OPENBLAS_VERBOSE=2 /usr/bin/python3 -c 'import torch; torch.ones(4, 4) @ torch.ones(4, 4)' 2>&1 \
  | sed -n 's/^Core: //p' | head -n 1)"
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
# the widest vectors decide the CPU kernels' tile shapes (bench/results differ between the two kinds)
if grep -q -m1 -w avx512f /proc/cpuinfo; then CPU="$CPU with AVX-512"; elif grep -q -m1 -w avx2 /proc/cpuinfo; then CPU="$CPU with AVX2"; fi
JAVA_HEAP="$JAVA_HEAP" OPENBLAS_CORE="${OPENBLAS_CORE:-unknown}" /usr/bin/python3 "$ROOT/bench/gpt-cpu-report.py" "$RAW" "$OUT" "$START" "$LOAD_BEFORE" "$LOAD_AFTER" "$CPU" \
  "$("$JAVA_HOME/bin/java" -version 2>&1 | head -1)" "$PAIRS"
