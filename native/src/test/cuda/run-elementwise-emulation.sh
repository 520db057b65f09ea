#!/usr/bin/env bash
# Builds and runs elementwise_host_emulation.cpp: elementwise.cu's mixture-of-experts row kernels (megatron_scale_rows,
# megatron_row_dot) executed on the CPU from their own source, with CudaBackend's launches, against fp64 (see the
# file's header). Needs g++ 12+ (C++20), no GPU and no CUDA (emulation-include/ stands in for cuda_bf16.h and
# cuda_fp16.h); without such a g++ it says so and exits 0. About 5 s on 2 cores. Exit status 1 when a case fails.
#   run-elementwise-emulation.sh [OUTPUT_DIR]   (default dist/elementwise-emulation; Maven passes target/elementwise-emulation)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
OUT="${1:-$ROOT/dist/elementwise-emulation}"
CXX="${CXX:-g++}"
if ! command -v "$CXX" >/dev/null 2>&1 || (( $("$CXX" -dumpversion | cut -d. -f1) < 12 )); then
  echo "elementwise host emulation: skipped, it needs g++ 12 or newer (C++20 <barrier>; apt-get install g++)"
  exit 0
fi
mkdir -p "$OUT"
# -fno-strict-aliasing: common.cuh moves 16-bit pairs through uint32_t by pointer casts, as CUDA code does
"$CXX" -std=c++20 -O2 -pthread -Wall -Wno-unknown-pragmas -fno-strict-aliasing -I"$HERE/emulation-include" \
  -o "$OUT/elementwise_host_emulation" "$HERE/elementwise_host_emulation.cpp"
exec "$OUT/elementwise_host_emulation"
