#!/usr/bin/env bash
# Builds and runs fa_host_emulation.cpp: the tensor-core FlashAttention kernels, fa2 (the production
# ones, flash_attention_fa2.cuh) and fa3 (flash_attention_wgmma.cuh, staged), executed on the CPU against
# an fp64 reference (see the file's header). Needs g++ 12+ (C++20), no GPU and no CUDA; without such a
# g++ it says so and exits 0. Exit status 1 when a case fails.
#   run-fa-emulation.sh [OUTPUT_DIR] [--fa2|--fa3]   (default dist/fa-emulation; Maven passes target/fa-emulation)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
OUT="${1:-$ROOT/dist/fa-emulation}"
CXX="${CXX:-g++}"
if ! command -v "$CXX" >/dev/null 2>&1 || (( $("$CXX" -dumpversion | cut -d. -f1) < 12 )); then
  echo "FlashAttention host emulation: skipped, it needs g++ 12 or newer (C++20 <barrier>; apt-get install g++)"
  exit 0
fi
mkdir -p "$OUT"
"$CXX" -std=c++20 -O2 -pthread -Wall -Wno-unknown-pragmas -o "$OUT/fa_host_emulation" "$HERE/fa_host_emulation.cpp"
exec "$OUT/fa_host_emulation" "${@:2}"
