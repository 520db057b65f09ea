#!/usr/bin/env bash
# bench/preprocess.sh: end-to-end throughput of `megatron preprocess` (loose JSON in, .bin/.idx out)
# with the GPT-2 BPE tokenizer, timed by /usr/bin/time, written to bench/results/preprocess-cpu.md.
#   bench/preprocess.sh                         build the corpus (once) and time 1 and 2 workers
#   bench/preprocess.sh --workers "1 2 4"       other worker counts
#   bench/preprocess.sh --copies 10             corpus size: copies of the KJV bible (4.2 MB each)
#   bench/preprocess.sh --jvm ";-XX:TieredStopAtLevel=1"   JVM option sets to compare, ';'-separated
#                                               (default: the launcher's flags, then C1 only)
#   GPT2_DIR=dir                                folder with gpt2-vocab.json and gpt2-merges.txt
#                                               (default: ../shared/data/gpt2 beside the repository)
#   MEGATRON_BUILD_DIR=target-x                 build into / run from another output folder
#   BENCH_WORK=dir                              where the corpus and outputs go (default /tmp/megatron-bench-preprocess)
# Corpus: the King James Bible from Debian's bible-kjv-text package (`bible` command), one JSON
# document per chapter, repeated to >= 20 MB; without the package, generated English-like text.
# Megatron-LM's tools/preprocess_data.py does about 0.5 M tokens/s on 2 cores on such text.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=../ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME

WORKERS="1 2"
COPIES=5
JVM_VARIANTS=";-XX:TieredStopAtLevel=1"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --copies) COPIES="$2"; shift 2 ;;
    --jvm) JVM_VARIANTS="$2"; shift 2 ;;
    *) echo "preprocess.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

BUILD_DIR="${MEGATRON_BUILD_DIR:-target}"
WORK="${BENCH_WORK:-/tmp/megatron-bench-preprocess}"
GPT2="${GPT2_DIR:-$ROOT/../shared/data/gpt2}"
for f in gpt2-vocab.json gpt2-merges.txt; do
  [[ -f "$GPT2/$f" ]] || { echo "preprocess.sh: $GPT2/$f not found; set GPT2_DIR" >&2; exit 1; }
done

JAR="$ROOT/cli/$BUILD_DIR/megatron-cli-0.1.0-SNAPSHOT.jar"
if [[ ! -f "$JAR" || -n "$(find "$ROOT" -path "$ROOT/.git" -prune -o \( -name '*.java' -o -name 'pom.xml' \) \
    -newer "$JAR" -print -quit 2>/dev/null)" ]]; then
  echo "preprocess.sh: building the CLI ($BUILD_DIR)..." >&2
  if command -v mvn >/dev/null 2>&1; then MVN=(mvn); else MVN=("$ROOT/mvnw"); fi
  (cd "$ROOT" && "${MVN[@]}" -B -q -Dmaven.test.skip=true -Dbuild.dir="$BUILD_DIR" -pl cli -am package)
fi

mkdir -p "$WORK"
CORPUS="$WORK/corpus-$COPIES.jsonl"
if [[ ! -s "$CORPUS" ]]; then
  if command -v bible >/dev/null 2>&1; then
    echo "preprocess.sh: building the corpus from bible-kjv-text ($COPIES copies)..." >&2
    bible -f 'Gen1:1-Rev22:21' </dev/null >"$WORK/kjv.txt"
    SOURCE="King James Bible (Debian bible-kjv-text), one document per chapter, $COPIES copies"
    awk -v copies="$COPIES" '
      function flush() { if (key != "") { docs[++n] = text; keys[n] = key } }
      match($0, /^[^ ]+:[0-9]+ /) {
        ref = substr($0, 1, RLENGTH - 1); verse = substr($0, RLENGTH + 1)
        split(ref, parts, ":"); k = parts[1]
        gsub(/\\/, "\\\\", verse); gsub(/"/, "\\\"", verse)
        if (k != key) { flush(); key = k; text = verse } else { text = text "\\n" verse }
      }
      END {
        flush()
        for (c = 0; c < copies; c++) for (i = 1; i <= n; i++) printf "{\"id\": \"%s-%d\", \"text\": \"%s\"}\n", keys[i], c, docs[i]
      }' "$WORK/kjv.txt" >"$CORPUS.tmp"
  else
    echo "preprocess.sh: bible-kjv-text not installed (apt-get install bible-kjv-text); generating text instead" >&2
    SOURCE="generated English-like text (bible-kjv-text not installed)"
    awk -v docs=$((6000 * COPIES / 5)) 'BEGIN {
        srand(1234)
        n = split("the of and to in a is that for it as was with be by on not he I this are or his from at which but have an they you were her she there been one all we their has would when if so no will more other time some these what only into them like can people new years many first then also could after two made most over my me", w, " ")
        for (d = 0; d < docs; d++) {
          s = ""
          for (k = 0; k < 600; k++) { x = w[int(rand() * rand() * n) + 1]; s = s (k % 15 == 0 ? ". " toupper(substr(x, 1, 1)) substr(x, 2) : " " x) }
          printf "{\"id\": %d, \"text\": \"%s.\"}\n", d, substr(s, 3)
        }
      }' >"$CORPUS.tmp"
  fi
  mv "$CORPUS.tmp" "$CORPUS"
else
  SOURCE="$(basename "$CORPUS") (cached in $WORK)"
fi
BYTES=$(stat -c %s "$CORPUS")
DOCS=$(wc -l <"$CORPUS")

OUT="$ROOT/bench/results/preprocess-cpu.md"
NPROC=$(nproc)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# megatron preprocess: GPT-2 BPE throughput on CPU"
  echo
  echo "Made by \`bench/preprocess.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs),"
  echo "$NPROC processors, load average before the runs $LOAD; JDK $("$JAVA_HOME/bin/java" -version 2>&1 | head -1 | cut -d'"' -f2)."
  echo "Corpus: $SOURCE; $DOCS documents, $(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB of loose JSON."
  echo "Command: \`megatron preprocess --tokenizer-type GPT2BPETokenizer --append-eod --workers W\`, the whole process"
  echo "timed by /usr/bin/time (JVM start, vocabulary loading and JIT included). *In-run* is the tool's own"
  echo "rate from the first batch to the last file renamed. *Per CPU-second* divides tokens by user + system"
  echo "time of the whole process, a figure that holds on a shared machine where wall time does not."
  echo
  echo "| JVM options | workers | tokens | wall s | user s | sys s | tokens/s (wall) | tokens/s (in-run) | tokens per CPU-second | max RSS MB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$OUT.tmp"

IFS=';' read -r -a VARIANTS <<<"$JVM_VARIANTS"
[[ ${#VARIANTS[@]} -gt 0 ]] || VARIANTS=("")
[[ "$JVM_VARIANTS" == *";" ]] && VARIANTS+=("")
for jvm in "${VARIANTS[@]}"; do
for w in $WORKERS; do
  echo "preprocess.sh: $w worker(s), JVM options: ${jvm:-launcher defaults}..." >&2
  rm -f "$WORK"/out_text_document.*
  # shellcheck disable=SC2086
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/time.txt" \
    "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC \
      ${MEGATRON_JAVA_OPTS:-} $jvm -cp "$JAR:$ROOT/cli/$BUILD_DIR/lib/*" org.megatronj.cli.Megatron preprocess \
      --input "$CORPUS" --output-prefix "$WORK/out" --tokenizer-type GPT2BPETokenizer \
      --vocab-file "$GPT2/gpt2-vocab.json" --merge-file "$GPT2/gpt2-merges.txt" --append-eod --workers "$w" \
      2> >(grep -v -E '^WARNING: Using incubator modules' | tee "$WORK/log.txt" >&2)
  sleep 0.2
  read -r wall user sys rss <"$WORK/time.txt"
  done_line=$(grep '^done:' "$WORK/log.txt")
  tokens=$(sed -E 's/^done: [0-9,]+ documents, ([0-9,]+) tokens.*/\1/; s/,//g' <<<"$done_line")
  inrun=$(sed -E 's/.*docs\/s, ([0-9,]+) tokens\/s.*/\1/; s/,//g' <<<"$done_line")
  awk -v j="${jvm:-(launcher defaults)}" -v w="$w" -v t="$tokens" -v wall="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v inrun="$inrun" 'BEGIN {
    printf "| %s | %d | %d | %.2f | %.2f | %.2f | %.2f M | %.2f M | %.2f M | %d |\n", j, w, t, wall, u, s, t / wall / 1e6, inrun / 1e6, t / (u + s) / 1e6, r / 1024 }' >>"$OUT.tmp"
done
done
{
  echo
  echo "Reference: Megatron-LM's tools/preprocess_data.py, about 0.5 M tokens/s on 2 cores; goal >= 2.5 M tokens/s."
  echo "On a corpus this small, C2 compilation is a large share of the CPU time; C1 only"
  echo "(-XX:TieredStopAtLevel=1, via MEGATRON_JAVA_OPTS) is cheaper below roughly 50 MB, C2 wins above."
  echo "The KJV corpus repeats one text, so the tokenizer's per-word cache hits more often than on a varied"
  echo "corpus; a corpus of many distinct texts will run somewhat slower per token."
} >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
