#!/usr/bin/env bash
# bench/gpt-cpu-profile.sh: where Megatron-J's fp32 CPU training time goes, per kernel family, for the
# configs of bench/gpt-cpu.sh. Runs GptTrainBenchmark with --jfr (JFR "profile" settings over the timed
# iterations only), summarises the recording with JfrProfileSummary and writes
# bench/results/gpt-train-cpu-profile.md. About 1 min (A) and 3 min (C) on a busy 2-core machine.
#   bench/gpt-cpu-profile.sh                  configs A and C
#   CONFIGS="A B C" bench/gpt-cpu-profile.sh
#   MEGATRON_BUILD_DIR=target-x, MEGATRON_JAVA_OPTS, JAVA_HEAP as for bench/gpt-cpu.sh
# Shares are of sampled CPU time (JFR samples running threads), so they hold on a shared machine.
# GFLOP/s per 2 owned cores = FLOPs of the family / (its share x own CPU seconds) x 2 threads.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=../ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME

CONFIGS="${CONFIGS:-A C}"
BUILD_DIR="${MEGATRON_BUILD_DIR:-target}"
JAVA_HEAP="${JAVA_HEAP:-512m}"
JAR="$ROOT/bench/$BUILD_DIR/megatron-bench.jar"
OUT="$ROOT/bench/results"
declare -A STEPS=([A]="2 5" [B]="2 4" [C]="1 3")

if [[ ! -f "$JAR" || -n "$(find "$ROOT" -path "$ROOT/.git" -prune -o \( -name '*.java' -o -name 'pom.xml' \) \
    -newer "$JAR" -print -quit 2>/dev/null)" ]]; then
  echo "gpt-cpu-profile.sh: building the benchmark jar ($BUILD_DIR)..." >&2
  if command -v mvn >/dev/null 2>&1; then MVN=(mvn -o); else MVN=("$ROOT/mvnw"); fi
  (cd "$ROOT" && "${MVN[@]}" -B -q -Dmaven.test.skip=true -Dbuild.dir="$BUILD_DIR" -pl bench -am package)
fi

WORK="$(mktemp -d /tmp/gpt-cpu-profile.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
JAVA=("$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED
      -XX:+UseParallelGC -XX:MaxInlineLevel=32 -Xmx"$JAVA_HEAP")
CP="$JAR:$ROOT/bench/$BUILD_DIR/lib/*"

for cfg in $CONFIGS; do
  [[ -n "${STEPS[$cfg]:-}" ]] || { echo "gpt-cpu-profile.sh: unknown config '$cfg'" >&2; exit 1; }
  read -r warmup steps <<< "${STEPS[$cfg]}"
  echo "gpt-cpu-profile.sh: config $cfg (load $(cut -d' ' -f1 /proc/loadavg))..." >&2
  # shellcheck disable=SC2086
  "${JAVA[@]}" ${MEGATRON_JAVA_OPTS:-} -cp "$CP" org.megatronj.bench.GptTrainBenchmark --config "$cfg" \
    --warmup "$warmup" --steps "$steps" --jfr "$WORK/$cfg.jfr" 2> "$WORK/$cfg.err" | grep '^{' > "$WORK/$cfg.json" \
    || { cat "$WORK/$cfg.err" >&2; exit 1; }
  "${JAVA[@]}" -cp "$CP" org.megatronj.bench.JfrProfileSummary "$WORK/$cfg.jfr" 4 > "$WORK/$cfg.md" 2> "$WORK/$cfg.err" \
    || { cat "$WORK/$cfg.err" >&2; exit 1; }
done

# The machine's FMA peak on 2 threads (FmaPeakBenchmark, a few seconds), for the "% of peak" figures: it differs
# between machines of this kind (AVX-512 ones measured 230 GFLOP/s, AVX2 ones 170-176).
echo "gpt-cpu-profile.sh: measuring the FMA peak (2 threads)..." >&2
"${JAVA[@]}" -cp "$CP" org.openjdk.jmh.Main 'FmaPeakBenchmark.fma' -t 2 -f 1 -wi 2 -w 250ms -i 6 -r 250ms \
  -rf json -rff "$WORK/peak.json" > "$WORK/peak.log" 2>&1 || { cat "$WORK/peak.log" >&2; exit 1; }
PEAK="$(/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))[0]
print(r["threads"] * float(sys.argv[2]) / (r["primaryMetric"]["score"] * 1e-6) / 1e9)' \
  "$WORK/peak.json" "$("${JAVA[@]}" -cp "$CP" org.megatronj.bench.FmaPeakBenchmark 2>/dev/null)")"

mkdir -p "$OUT"
/usr/bin/python3 - "$WORK" "$OUT" "$CONFIGS" "$PEAK" <<'EOF'
import json, os, re, sys, time
work, out, configs, peak = sys.argv[1], sys.argv[2], sys.argv[3].split(), float(sys.argv[4])
md = ['# Where Megatron-J\'s fp32 CPU training time goes (JFR execution samples)', '',
      f'Made by `bench/gpt-cpu-profile.sh` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; '
      f'load average {open("/proc/loadavg").read().split()[0]} at the end. Only the timed iterations are recorded.',
      'Shares are of sampled CPU time. "GFLOP/s per 2 owned cores" = the family\'s FLOPs per iteration / (share x own CPU',
      f's per iteration) x 2: its speed had it both cores to itself (FMA peak of these 2 cores, measured just before: {peak:.0f} GFLOP/s; the issue quotes 198).',
      'gemm FLOPs = 6 (12 L H^2 + V H) per token (Megatron\'s count without attention); attention FLOPs = 12 L H T per',
      'token (un-masked, as Megatron counts it; a causal kernel that skips masked blocks does about half).', '']
for cfg in configs:
    j = json.loads(open(os.path.join(work, cfg + '.json')).read())
    table = open(os.path.join(work, cfg + '.md')).read()
    L, H, T, V, tokens = j['L'], j['H'], j['T'], j['V'], j['B'] * j['T']
    share = {m.group(1): float(m.group(2)) / 100 for m in re.finditer(r'^\| ([^|]+?) \| \d+ \| ([0-9.]+)%', table, re.M)}
    flops = {'gemm': 6 * (12 * L * H * H + V * H) * tokens, 'attention': 12 * L * H * T * tokens}
    md += [f"## Config {cfg}: {L} layers, hidden {H}, {j['heads']} heads, seq {T}, micro-batch {j['B']}", '',
           f"{j['tok_s']:.0f} tokens/s wall ({1000 * j['step_s']:.0f} ms/iteration, own CPU {j['cpu_s']:.2f} s/iteration, "
           f"other processes {100 * j['other_median']:.0f}% of the machine), {2 * tokens / j['cpu_s']:.0f} tokens per 2 owned "
           f"core-seconds; forward+backward {1000 * j['fb_s']:.0f} ms, AdamW {1000 * j['opt_s']:.0f} ms.", '', table.rstrip(), '']
    for fam, f in flops.items():
        if share.get(fam):
            rate = f / (share[fam] * j['cpu_s']) * 2 / 1e9
            md.append(f"- {fam}: {f / 1e9:.1f} GFLOP per iteration, {rate:.0f} GFLOP/s per 2 owned cores "
                      f"({100 * rate / peak:.0f}% of the {peak:.0f} GFLOP/s FMA peak)")
    md.append('')
tmp = os.path.join(out, '.gpt-train-cpu-profile.md.tmp')
with open(tmp, 'w') as f:
    f.write('\n'.join(md) + '\n')
os.replace(tmp, os.path.join(out, 'gpt-train-cpu-profile.md'))
print('\n'.join(md))
EOF
