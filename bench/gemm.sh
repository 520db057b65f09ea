#!/usr/bin/env bash
# bench/gemm.sh: measures the CPU gemm (fp32) against the machine's FMA peak with JMH and writes
# bench/results/gemm-cpu.md (table) and bench/results/gemm-cpu.csv. About 3-4 minutes on 2 cores.
#   bench/gemm.sh                                  all shapes on 1 and 2 threads
#   bench/gemm.sh --shapes square-2048 --threads 2 a subset (options: --out --threads --shapes
#                                                  --warmup --iterations --time)
#   MEGATRON_BUILD_DIR=target-x bench/gemm.sh      build into / run from another output folder
# Builds the benchmark jar first when it is missing or older than the sources.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=../ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME

BUILD_DIR="${MEGATRON_BUILD_DIR:-target}"
JAR="$ROOT/bench/$BUILD_DIR/megatron-bench.jar"

if [[ ! -f "$JAR" || -n "$(find "$ROOT" -path "$ROOT/.git" -prune -o \( -name '*.java' -o -name 'pom.xml' \) \
    -newer "$JAR" -print -quit 2>/dev/null)" ]]; then
  echo "gemm.sh: building the benchmark jar ($BUILD_DIR)..." >&2
  if command -v mvn >/dev/null 2>&1; then MVN=(mvn); else MVN=("$ROOT/mvnw"); fi
  (cd "$ROOT" && "${MVN[@]}" -B -q -DskipTests -Dbuild.dir="$BUILD_DIR" -pl bench -am package)
fi

cd "$ROOT"
exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -cp "$JAR" org.megatronj.bench.GemmReport --out "$ROOT/bench/results" "$@"
