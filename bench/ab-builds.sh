#!/usr/bin/env bash
# bench/ab-builds.sh: is the work tree faster or slower than a git revision, on CPU training? Builds the revision
# in a temporary git worktree, then trains both builds in one JVM with their steps alternating (BuildAB) and
# prints the per-round ratios and their median (B = this work tree, A = the revision; B/A < 1: faster now).
#   bench/ab-builds.sh REV [CONFIG] [ROUNDS]     e.g. bench/ab-builds.sh HEAD~2 C 30  (defaults: A, 30 rounds)
#   MEGATRON_JAVA_OPTS                           extra JVM flags for the shared JVM
# Why: on these shared 2-core hosts a build's speed swings by 20-40% between whole runs and by +-20% between
# steps seconds apart, so effects of a few percent only show as the median of many adjacent-step ratios.
# About 3 s a round for config A, 10 s for C (plus two builds of a minute each); both models are in memory.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=../ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME

REV="${1:?usage: bench/ab-builds.sh REV [CONFIG] [ROUNDS]}"
CONFIG="${2:-A}"
ROUNDS="${3:-30}"
git -C "$ROOT" rev-parse --verify -q "$REV^{commit}" > /dev/null || { echo "ab-builds.sh: '$REV' is not a commit of $ROOT" >&2; exit 1; }
if command -v mvn >/dev/null 2>&1; then MVN=(mvn -o -B -q); else MVN=("$ROOT/mvnw" -B -q); fi

WORK="$(mktemp -d /tmp/ab-builds.XXXXXX)"
cleanup() { git -C "$ROOT" worktree remove --force "$WORK/base" > /dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
git -C "$ROOT" worktree add --detach "$WORK/base" "$REV" > /dev/null 2>&1
echo "ab-builds.sh: building $REV ($(git -C "$ROOT" rev-parse --short "$REV")) and the work tree..." >&2
# CUDA kernels are not needed on the CPU: skip nvcc for both builds
(cd "$WORK/base" && MEGATRON_SKIP_NVCC=1 "${MVN[@]}" -Dmaven.test.skip=true -pl bench -am package) >&2
(cd "$ROOT" && MEGATRON_SKIP_NVCC=1 "${MVN[@]}" -Dmaven.test.skip=true -Dbuild.dir=target-ab -pl bench -am package) >&2

echo "ab-builds.sh: config $CONFIG, $ROUNDS rounds; A = $REV, B = work tree" >&2
# shellcheck disable=SC2086
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC \
  -XX:MaxInlineLevel=32 ${MEGATRON_JAVA_OPTS:-} -cp "$ROOT/bench/target-ab/megatron-bench.jar:$ROOT/bench/target-ab/lib/*" \
  org.megatronj.bench.BuildAB "$CONFIG" "$ROUNDS" "$WORK/base/bench/target" "$ROOT/bench/target-ab"
