#!/usr/bin/env bash
# The project's test command (README "Set up"): builds every module and runs all tests that
# need neither a GPU nor much time (JUnit tags gpu and slow are excluded; pass
# -Dtest.excluded=gpu to include the slow ones). Extra arguments go to Maven.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
source "$ROOT/ci/find-jdk.sh"
JAVA_HOME="$(megatron_find_jdk)" || exit 1
export JAVA_HOME
if command -v mvn >/dev/null 2>&1; then MVN=(mvn); else MVN=("$ROOT/mvnw"); fi
cd "$ROOT"
echo "ci/test.sh: JDK $JAVA_HOME, $("${MVN[@]}" -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
exec "${MVN[@]}" -B -ntp install "$@"
