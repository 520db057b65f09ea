#!/usr/bin/env bash
# Builds native/src/main/cuda/megatron_kernels.cu into one fatbin (SASS for sm_80 and sm_90,
# PTX for compute_90 so newer GPUs JIT it) and writes it where the jar picks it up.
#   build-fatbin.sh OUTPUT_DIR [STAMP]  (Maven passes ${project.build.outputDirectory}/org/megatronj/native and a
#                                        stamp file under target/ that skips the rebuild when nothing changed)
#   NVCC=/path/to/nvcc                  overrides the search (PATH, CUDA_HOME, /usr/local/cuda*)
#   MEGATRON_SKIP_NVCC=1                skips the build (the jar then ships without kernels)
# Without nvcc it prints why and succeeds: the CUDA backend then reports that kernels are missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT_DIR="${1:?usage: build-fatbin.sh OUTPUT_DIR}"
SRC="$HERE/src/main/cuda"

if [[ "${MEGATRON_SKIP_NVCC:-0}" == 1 ]]; then
  echo "[native] MEGATRON_SKIP_NVCC=1: not building CUDA kernels; the jar has no megatron_kernels.fatbin"
  exit 0
fi
NVCC="${NVCC:-}"
if [[ -z "$NVCC" ]]; then
  for c in "$(command -v nvcc 2>/dev/null || true)" "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc \
           /usr/local/cuda-13.0/bin/nvcc /usr/local/cuda-12/bin/nvcc; do
    [[ -n "$c" && -x "$c" ]] && NVCC="$c" && break
  done
fi
if [[ -z "$NVCC" ]]; then
  echo "[native] nvcc not found (PATH, CUDA_HOME, /usr/local/cuda*): CUDA kernels NOT built;"
  echo "[native] the jar has no megatron_kernels.fatbin and the CUDA backend will say so. Set NVCC=... to build them."
  exit 0
fi

mkdir -p "$OUT_DIR"
target="$OUT_DIR/megatron_kernels.fatbin"
stamp="${2:-$OUT_DIR/../nvcc-fatbin.inputs}"
inputs="$("$NVCC" --version | tail -1) $(cat "$SRC"/*.cu "$SRC"/*.cuh "$0" | sha256sum | cut -c1-16)"
if [[ -f "$target" && -f "$stamp" && "$(cat "$stamp")" == "$inputs" ]]; then
  echo "[native] megatron_kernels.fatbin is up to date"
  exit 0
fi
start=$(date +%s)
# -t 2: the sm_80 and sm_90 passes run in parallel (CI has 2 cores).
"$NVCC" -fatbin -O3 -std=c++17 -t 2 \
  -gencode=arch=compute_80,code=sm_80 \
  -gencode=arch=compute_90,code=sm_90 \
  -gencode=arch=compute_90,code=compute_90 \
  -o "$target.tmp" "$SRC/megatron_kernels.cu"
mv "$target.tmp" "$target"
echo "$inputs" > "$stamp"
echo "[native] built $(basename "$target") ($(stat -c %s "$target") bytes, sm_80 sm_90 + compute_90 PTX) with $NVCC in $(( $(date +%s) - start )) s"
