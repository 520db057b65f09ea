#!/usr/bin/env bash
# bench/parallel-memory.sh: what parallel GPT training holds and sends per rank, against Megatron's
# analytic numbers (model-state bytes per parameter, activation bytes per recompute setting,
# communication bytes per iteration), for a small fp32 GPT on the CPU backend with ranks as threads.
# Writes bench/results/parallel-memory.md. Takes a few minutes (tens of tiny parallel runs).
#   MEGATRON_BUILD_DIR=target-x      build into / run from another output folder (default target)
#   MEGATRON_JAVA_OPTS=...           extra JVM options
#   RESULTS_DIR=/some/dir            write the report there instead of bench/results
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=../ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME

BUILD_DIR="${MEGATRON_BUILD_DIR:-target}"
JAR="$ROOT/bench/$BUILD_DIR/megatron-bench.jar"
OUT="${RESULTS_DIR:-$ROOT/bench/results}"

log() { echo "parallel-memory.sh: $*" >&2; }

if [[ ! -f "$JAR" || -n "$(find "$ROOT" -path "$ROOT/.git" -prune -o \( -name '*.java' -o -name 'pom.xml' \) \
    -newer "$JAR" -print -quit 2>/dev/null)" ]]; then
  log "building the benchmark jar ($BUILD_DIR)..."
  if command -v mvn >/dev/null 2>&1; then MVN=(mvn -o); else MVN=("$ROOT/mvnw"); fi
  (cd "$ROOT" && "${MVN[@]}" -B -q -DskipTests -Dbuild.dir="$BUILD_DIR" -pl bench -am package)
fi

mkdir -p "$OUT"
# The runs allocate their tensors off-heap (arenas); the heap only holds the tallies and the report.
# shellcheck disable=SC2086
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx1g \
  ${MEGATRON_JAVA_OPTS:-} -cp "$JAR:$ROOT/bench/$BUILD_DIR/lib/*" \
  org.megatronj.bench.ParallelMemoryBenchmark --out "$OUT/parallel-memory.md"
log "wrote $OUT/parallel-memory.md"
