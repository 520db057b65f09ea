#!/usr/bin/env bash
# Builds the standalone memory-bound kernel check into dist/bw-check/memory_bound_check (sm_90).
#   native/src/test/cuda/build-memory-bound-check.sh && dist/bw-check/memory_bound_check [--quick]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
[[ -x "$NVCC" ]] || NVCC=/usr/local/cuda-13.0/bin/nvcc
mkdir -p "$ROOT/dist/bw-check"
"$NVCC" -O3 -std=c++17 -arch=sm_90 -Xptxas -v -o "$ROOT/dist/bw-check/memory_bound_check" "$HERE/memory_bound_check.cu" 2>&1 \
  | grep -E "error|warning|spill" | grep -v " 0 bytes spill stores, 0 bytes spill loads" || true
test -x "$ROOT/dist/bw-check/memory_bound_check" && echo "built $ROOT/dist/bw-check/memory_bound_check"
