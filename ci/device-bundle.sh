#!/usr/bin/env bash
# Builds dist/megatron-device/: a self-contained folder that runs Megatron-J and its GPU tests on
# a machine with no JDK, no Maven and no network (such as the lent GPU machine):
#   runtime/            a jlinked Java runtime (java.base, jdk.incubator.vector, jdk.jfr, ...)
#   lib/                the CLI jar and every runtime dependency (the native jar holds the fatbin)
#   tests/<module>/     compiled test classes of the modules that have GPU-tagged tests
#   junit/              JUnit Platform Console Standalone (from Maven Central via dependency:copy)
#   megatron            the launcher:  ./megatron info
#   run-gpu-tests.sh    runs the tests tagged gpu, writes reports to $OUT (or ./gpu-test-results)
#   run-gpu-bench.sh    times the CUDA backend's hot ops (bench/.../gpu/GpuKernelReport), gpu-kernels.md to $OUT
# What travels to the device machine is dist/megatron-device.tgz (the folder gzipped; ci/gpu-session.sh unpacks it
# there) with the checkout: the two must stay under 64 MiB together; the script checks.
#
#   ci/device-bundle.sh                  build everything, then bundle
#   BUILD_DIR=target-x ci/device-bundle.sh   build into another Maven output folder (-Dbuild.dir)
#   ci/device-bundle.sh --no-build       bundle an existing build of BUILD_DIR
#   MVN_ARGS="-o" ci/device-bundle.sh    extra Maven arguments (e.g. offline)
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
# shellcheck source=ci/find-jdk.sh
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME
if command -v mvn >/dev/null 2>&1; then MVN=(mvn); else MVN=("$ROOT/mvnw"); fi
BUILD_DIR="${BUILD_DIR:-target}"
DIST="$ROOT/dist/megatron-device"
LIMIT_BYTES=$((64 * 1024 * 1024))
JUNIT_PLATFORM_VERSION="${JUNIT_PLATFORM_VERSION:-1.13.4}"
TEST_MODULES=(bindings memory model parallel)
# shellcheck disable=SC2206
EXTRA=(${MVN_ARGS:-})

cd "$ROOT"
if [[ "${1:-}" != "--no-build" ]]; then
  echo "device-bundle: building (mvn package, tests compiled but not run) into */$BUILD_DIR" >&2
  "${MVN[@]}" -B -q -ntp "${EXTRA[@]}" -Dbuild.dir="$BUILD_DIR" -DskipTests package
fi
CLI_JAR="$ROOT/cli/$BUILD_DIR/megatron-cli-0.1.0-SNAPSHOT.jar"
[[ -f "$CLI_JAR" ]] || { echo "device-bundle: $CLI_JAR is missing; build first" >&2; exit 1; }

rm -rf "$DIST.tmp"
mkdir -p "$DIST.tmp"/{lib,tests,junit}

cp "$CLI_JAR" "$ROOT"/cli/"$BUILD_DIR"/lib/*.jar "$DIST.tmp/lib/"
# The GPU kernel report (bench/src/main/java/org/megatronj/bench/gpu) needs only the bench jar itself.
BENCH_JAR="$ROOT/bench/$BUILD_DIR/megatron-bench.jar"
if [[ -f "$BENCH_JAR" ]]; then cp "$BENCH_JAR" "$DIST.tmp/lib/"; fi
# Modules: what jdeps finds the jars need, plus what is loaded only reflectively or by flags
# (the Vector API, JFR and its JMX side, java.xml for the JUnit XML reports, zipfs). java.desktop
# (AWT, ~15 MB, used only by `plot-loss` to draw PNGs) is left out unless BUNDLE_EXTRA_MODULES
# names it: with it the bundle no longer fits the device machine's 64 MiB.
BASE_MODULES="java.base,jdk.incubator.vector,jdk.jfr,jdk.management.jfr,java.management,jdk.management,jdk.unsupported,java.logging,java.xml,jdk.zipfs"
FOUND_MODULES="$("$JAVA_HOME/bin/jdeps" --print-module-deps --ignore-missing-deps --multi-release 25 -q "$DIST.tmp"/lib/*.jar 2>/dev/null | tail -1)"
MODULES="$(echo "$BASE_MODULES,$FOUND_MODULES,${BUNDLE_EXTRA_MODULES:-}" | tr ',' '\n' | grep -v '^$' | sort -u \
  | { if [[ ",${BUNDLE_EXTRA_MODULES:-}," == *",java.desktop,"* ]]; then cat; else grep -v '^java.desktop$'; fi; } | paste -sd,)"
echo "device-bundle: jlink runtime with $MODULES" >&2
"$JAVA_HOME/bin/jlink" \
  --add-modules "$MODULES" \
  --strip-debug --no-header-files --no-man-pages --compress=zip-6 \
  --output "$DIST.tmp/runtime"
# libjvm.so carries a 5 MB static symbol table (only crash logs read it); the dynamic symbols stay.
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded "$DIST.tmp/runtime/lib/server/libjvm.so"
fi

for m in "${TEST_MODULES[@]}"; do
  # only the modules with gpu-tagged tests: the others' classes and fixtures would only take room
  if [[ -d "$ROOT/$m/$BUILD_DIR/test-classes" ]] && grep -rqs '@Tag("gpu")' "$ROOT/$m/src/test"; then
    cp -r "$ROOT/$m/$BUILD_DIR/test-classes" "$DIST.tmp/tests/$m"
  fi
done

echo "device-bundle: JUnit Platform Console Standalone $JUNIT_PLATFORM_VERSION" >&2
"${MVN[@]}" -B -q -ntp "${EXTRA[@]}" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
  -Dartifact="org.junit.platform:junit-platform-console-standalone:$JUNIT_PLATFORM_VERSION" \
  -DoutputDirectory="$DIST.tmp/junit" -Dmdep.stripVersion=true

cat > "$DIST.tmp/megatron" <<'EOF'
#!/usr/bin/env bash
# Megatron-J from the device bundle: the bundled runtime and jars, no JDK or build needed.
HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
# shellcheck disable=SC2086
exec "$HERE/runtime/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -XX:+UseParallelGC -XX:MaxInlineLevel=32 ${MEGATRON_JAVA_OPTS:-} -cp "$HERE/lib/*" org.megatronj.cli.Megatron "$@" \
  2> >(grep -v -E '^WARNING: Using incubator modules' >&2)
EOF

cat > "$DIST.tmp/run-gpu-tests.sh" <<'EOF'
#!/usr/bin/env bash
# Runs the JUnit tests tagged gpu (CUDA backend against the CPU reference, ...) with the bundled
# runtime. Reports (JUnit XML and a summary) go to $OUT, else ./gpu-test-results.
#   ./run-gpu-tests.sh                      all gpu-tagged tests
#   ./run-gpu-tests.sh --select-class org.megatronj.memory.cuda.CudaBackendTest
set -uo pipefail
HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
REPORTS="${OUT:-$PWD/gpu-test-results}"
mkdir -p "$REPORTS"
"$HERE/megatron" info 2>&1 | tee "$REPORTS/megatron-info.txt"
# The console launcher does not expand "lib/*" as java -cp does: list the jars.
CP="$(printf '%s:' "$HERE"/lib/*.jar)"
CP="${CP%:}"
SCAN=()
for t in "$HERE"/tests/*; do
  [[ -d "$t" ]] && CP="$CP:$t" && SCAN+=(--scan-class-path "$t")
done
if [[ $# -gt 0 ]]; then SCAN=("$@"); fi
MEGATRON_REQUIRE_GPU=1 "$HERE/runtime/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m \
  -jar "$HERE/junit/junit-platform-console-standalone.jar" execute \
  --class-path "$CP" "${SCAN[@]}" --include-tag gpu \
  --reports-dir "$REPORTS" --details=tree --disable-banner 2>&1 | tee "$REPORTS/summary.txt"
exit "${PIPESTATUS[0]}"
EOF
cat > "$DIST.tmp/run-gpu-bench.sh" <<'EOF'
#!/usr/bin/env bash
# Times the CUDA backend's hot ops with CUDA events; writes gpu-kernels.md to $OUT (or ./gpu-bench-results).
HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
[[ -f "$HERE/lib/megatron-bench.jar" ]] || { echo "run-gpu-bench.sh: the bundle has no megatron-bench.jar" >&2; exit 1; }
exec "$HERE/runtime/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx16g \
  -cp "$HERE/lib/*" org.megatronj.bench.gpu.GpuKernelReport --out "${OUT:-$PWD/gpu-bench-results}" "$@"
EOF
chmod +x "$DIST.tmp/megatron" "$DIST.tmp/run-gpu-tests.sh" "$DIST.tmp/run-gpu-bench.sh"

if ! "$DIST.tmp/runtime/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
    -cp "$DIST.tmp/lib/*" org.megatronj.cli.Megatron info >"$DIST.tmp/.smoke.log" 2>&1; then
  echo "device-bundle: the bundled launcher cannot run 'megatron info' with the jlinked runtime:" >&2
  grep -v -e '^\s*at ' -e '^WARNING: Using incubator' "$DIST.tmp/.smoke.log" | head -5 >&2
  echo "device-bundle: (a class the CLI loads at start-up needs a module left out above, e.g. AWT types in a" >&2
  echo "device-bundle:  picocli command class; move them to a helper class, or set BUNDLE_EXTRA_MODULES)" >&2
  exit 1
fi
rm -f "$DIST.tmp/.smoke.log"

size=$(du -sb "$DIST.tmp" | cut -f1)
# The device machine takes the checkout (tracked and untracked files) with the carried archive: 64 MiB in all. The
# folder itself is over that with today's checkout (libjvm.so alone is 24 MB; gzip halves it), so the archive travels.
tar czf "$DIST.tgz.tmp" -C "$DIST.tmp" .
packed=$(stat -c %s "$DIST.tgz.tmp")
tree=$(cd "$ROOT" && { git ls-files -z --cached --others --exclude-standard 2>/dev/null || true; } \
  | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
if (( packed + tree >= LIMIT_BYTES )); then
  echo "device-bundle: the bundle's archive ($packed bytes) and the checkout ($tree bytes) are over the 64 MiB the" \
    "device machine takes; see du -sh $DIST.tmp/*" >&2
  du -sh "$DIST.tmp"/* >&2
  rm -f "$DIST.tgz.tmp"
  exit 1
fi
rm -rf "$DIST"
mv "$DIST.tmp" "$DIST"
mv "$DIST.tgz.tmp" "$DIST.tgz"
echo "device-bundle: $DIST ($((size / 1024 / 1024)) MiB; carry $DIST.tgz, $((packed / 1024 / 1024)) MiB, with the checkout $(((packed + tree) / 1024 / 1024)) MiB of 64): runtime $(du -sh "$DIST/runtime" | cut -f1), lib $(du -sh "$DIST/lib" | cut -f1), tests $(du -sh "$DIST/tests" | cut -f1)"
echo "device-bundle: try  $DIST/megatron info   and   OUT=/tmp/r $DIST/run-gpu-tests.sh"
