#!/usr/bin/env bash
# Builds the FlashAttention check/benchmark harness (flash_attention_check.cu, which includes the
# kernels' translation unit) with the fatbin's gencodes into dist/fa-check/flash_attention_check,
# and writes the ptxas resource usage of every FlashAttention kernel into dist/fa-check/resources.txt.
#   NVCC=/path/to/nvcc overrides the search.  Run from anywhere; paths are relative to the repo root.
# Default gencodes: the fatbin's (sm_80, sm_90, compute_90 PTX) plus sm_90a, whose code alone holds the
# wgmma kernels (flash_attention_wgmma.cuh; the harness leaves them out where the device runs other code).
# GENCODES="-gencode=arch=compute_90a,code=sm_90a" builds for the H100 alone (a smaller binary to carry,
# and the one that runs the wgmma variants there).
# Where cuobjdump sits beside nvcc, also writes per-kernel SASS instruction counts (sass-summary.txt).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../../.." && pwd)"
OUT="$ROOT/dist/fa-check"
NVCC="${NVCC:-}"
if [[ -z "$NVCC" ]]; then
  for c in "$(command -v nvcc 2>/dev/null || true)" "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc \
           /usr/local/cuda-13.0/bin/nvcc /usr/local/cuda-12/bin/nvcc; do
    [[ -n "$c" && -x "$c" ]] && NVCC="$c" && break
  done
fi
[[ -n "$NVCC" ]] || { echo "nvcc not found; set NVCC=..." >&2; exit 1; }
mkdir -p "$OUT"
start=$(date +%s)
"$NVCC" -O3 -std=c++17 -t 2 -lineinfo \
  ${GENCODES:--gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90 -gencode=arch=compute_90a,code=sm_90a} \
  -Xptxas -v \
  -o "$OUT/flash_attention_check" "$HERE/flash_attention_check.cu" 2> "$OUT/ptxas.log" || { cat "$OUT/ptxas.log" >&2; exit 1; }
# keep the FlashAttention kernels' lines: "<arch> <kernel>: <registers, spills, shared>"
awk '
  /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); fn = substr($0, RSTART + 1, RLENGTH - 2);
                               match($0, /for \x27sm_[0-9]+a?\x27/); arch = substr($0, RSTART + 5, RLENGTH - 6); next }
  /spill stores/ { spill = $0; sub(/^ +/, "", spill); next }
  /Used [0-9]+ registers/ { if (fn ~ /flash_attention|fa2|fa3/) { u = $0; sub(/^.*Used/, "Used", u); printf "%-7s %-40s %s | %s\n", arch, fn, u, spill } }
' "$OUT/ptxas.log" | sort > "$OUT/resources.txt"
echo "built $OUT/flash_attention_check in $(( $(date +%s) - start )) s; resources:"
cat "$OUT/resources.txt"
# SASS instruction counts per FA2/FA3 kernel (where cuobjdump is installed beside nvcc): HMMA, HGMMA, LDSM, MUFU.EX2,
# local-memory traffic (LDL/STL: must be 0), reductions/atomics, barriers -> dist/fa-check/sass-summary.txt
CUOBJDUMP="$(dirname "$NVCC")/cuobjdump"
if [[ -x "$CUOBJDUMP" ]]; then
  "$CUOBJDUMP" -sass "$OUT/flash_attention_check" | awk '
    function flush() { if (fn ~ /fa2|fa3/) printf "%-5s HMMA %4d HGMMA %3d LDSM %4d EX2 %3d LDL %3d STL %3d RED %3d ATOM %3d BAR %2d  %s\n", arch, n["HMMA"], n["HGMMA"], n["LDSM"], n["EX2"], n["LDL"], n["STL"], n["RED"], n["ATOM"], n["BAR"], fn; delete n }
    /arch = sm_/ { a = $0; sub(/.*arch = /, "", a); sub(/[^a-z0-9_].*/, "", a); arch = a }
    /Function : / { flush(); fn = $NF; next }
    / HMMA/ { n["HMMA"]++ } / HGMMA/ { n["HGMMA"]++ } / LDSM/ { n["LDSM"]++ } /MUFU.EX2/ { n["EX2"]++ } / LDL/ { n["LDL"]++ } / STL/ { n["STL"]++ }
    / RED/ { n["RED"]++ } / ATOM/ { n["ATOM"]++ } / BAR.SYNC/ { n["BAR"]++ }
    END { flush() }' > "$OUT/sass-summary.txt" || true
  echo "SASS summary ($OUT/sass-summary.txt):"; cat "$OUT/sass-summary.txt"
fi
if grep -E 'fa2|fa3|flash_attention' "$OUT/resources.txt" | grep -qv '0 bytes spill stores, 0 bytes spill loads'; then
  echo "WARNING: a FlashAttention kernel spills registers (see above)" >&2
fi
# ptxas falls back to waiting after every wgmma when it cannot prove the accumulators untouched meanwhile
if grep -qi 'wgmma.*serializ' "$OUT/ptxas.log"; then
  grep -i 'wgmma.*serializ' "$OUT/ptxas.log" >&2
  echo "WARNING: ptxas serialised wgmma instructions (see above)" >&2
fi
