#!/usr/bin/env bash
# Regenerates bindings/src/main/java/org/megatronj/bindings/{cuda,cublaslt,nccl} from the real headers.
# Needs Debian's libclang bindings: apt-get install -y python3-clang-14 libclang1-14 (use /usr/bin/python3).
#   CUDA_INCLUDE      folder holding cuda.h (default /usr/local/cuda/include, then /usr/local/cuda-13.0/include)
#   CUBLAS_INCLUDE    folder holding cublasLt.h and cublas_api.h (default: CUDA_INCLUDE)
#   NCCL_INCLUDE      folder holding nccl.h (default: the nvidia/nccl/include of /opt/torch/.venv)
#   HEADER_ROOT       where a GPU machine's headers were unpacked (a copy of its /usr/local/cuda/include and
#                     /opt/torch/.venv/...): the three folders default to those under it, and the
#                     .jextract-args files record the machine's own paths (HEADER_ROOT removed)
#   EXTRA_INCLUDE     one more include folder, searched last (e.g. for cuComplex.h when the copy lacks it)
# Each header's version is read off its own macros and written into the generated comments.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/../src/main/java"
PY=/usr/bin/python3

ROOT="${HEADER_ROOT:-}"
if [[ -z "${CUDA_INCLUDE:-}" ]]; then
  for d in "$ROOT/usr/local/cuda/include" /usr/local/cuda/include /usr/local/cuda-13.0/include; do [[ -f $d/cuda.h ]] && CUDA_INCLUDE=$d && break; done
fi
CUBLAS_INCLUDE="${CUBLAS_INCLUDE:-${CUDA_INCLUDE:-}}"
NCCL_INCLUDE="${NCCL_INCLUDE:-$ROOT/opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl/include}"

EXTRA=(); [[ -n "${EXTRA_INCLUDE:-}" ]] && EXTRA=(-I "$EXTRA_INCLUDE")
[[ -n "$ROOT" ]] && EXTRA+=(--strip-prefix "$ROOT")

macro() { sed -n "s/^#define $2 *\([0-9]*\).*/\1/p" "$1" | head -1; }

if [[ -f "${CUDA_INCLUDE:-}/cuda.h" ]]; then
  v=$(macro "$CUDA_INCLUDE/cuda.h" CUDA_VERSION)
  "$PY" "$HERE/generate.py" --header "$CUDA_INCLUDE/cuda.h" --source-label "cuda.h (CUDA $((v / 1000)).$((v % 1000 / 10)))" \
    --symbols "$HERE/symbols/cuda.txt" --package org.megatronj.bindings.cuda --class cuda_h \
    --library libcuda.so.1 --library libcuda.so -I "$CUDA_INCLUDE" "${EXTRA[@]}" --out "$OUT"
else
  echo "regenerate.sh: no cuda.h (set CUDA_INCLUDE); cuda_h left as is" >&2
fi

if [[ -f "${CUBLAS_INCLUDE:-}/cublasLt.h" ]]; then
  api="$CUBLAS_INCLUDE/cublas_api.h"
  v="$(macro "$api" CUBLAS_VER_MAJOR).$(macro "$api" CUBLAS_VER_MINOR)"
  "$PY" "$HERE/generate.py" --header "$CUBLAS_INCLUDE/cublasLt.h" --source-label "cublasLt.h (cuBLAS $v)" \
    --symbols "$HERE/symbols/cublasLt.txt" --package org.megatronj.bindings.cublaslt --class cublasLt_h \
    --library libcublasLt.so.13 --library libcublasLt.so.12 --library libcublasLt.so \
    -I "$CUBLAS_INCLUDE" -I "$CUDA_INCLUDE" "${EXTRA[@]}" --out "$OUT"
else
  echo "regenerate.sh: no cublasLt.h (set CUBLAS_INCLUDE); cublasLt_h left as is" >&2
fi

if [[ -f "$NCCL_INCLUDE/nccl.h" ]]; then
  h="$NCCL_INCLUDE/nccl.h"
  v="$(macro "$h" NCCL_MAJOR).$(macro "$h" NCCL_MINOR).$(macro "$h" NCCL_PATCH)"
  "$PY" "$HERE/generate.py" --header "$h" --source-label "nccl.h (NCCL $v)" \
    --symbols "$HERE/symbols/nccl.txt" --package org.megatronj.bindings.nccl --class nccl_h \
    --library libnccl.so.2 --library libnccl.so -I "$NCCL_INCLUDE" -I "$CUDA_INCLUDE" "${EXTRA[@]}" --out "$OUT"
else
  echo "regenerate.sh: no nccl.h (set NCCL_INCLUDE); nccl_h left as is" >&2
fi
