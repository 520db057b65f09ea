#!/usr/bin/env bash
# ci/gpu-session.sh: one lease of the GPU machine, as few calls as possible. Runs from the repo root
# there, with the device bundle (ci/device-bundle.sh) carried as dist/megatron-device.tgz (unpacked into
# dist/megatron-device here when that folder is missing) and, for the
# PyTorch side, dist/baselines/gpt_torch_gpu.py (a copy of ../shared/baselines/, which does not travel).
#   ci/gpu-session.sh STEP[:ARG,ARG]...   (default: env tests train bench)
# steps: env, headers (NVIDIA headers for bindings/jextract), tests[:junit args], sanitize, train[:cpu,fp32,bf16,fp16,moe],
#        bench (GpuKernelReport), gptbench[:bf16,fp16,fp32] (bench/gpt-gpu.sh), torch (PyTorch baseline),
#        profile (GPT 124M/345M bf16: GPU time per kernel, JFR), fa (dist/fa-check/flash_attention_check), bw (dist/bw-check/memory_bound_check)
# What comes back (at most 8 files): $OUT/session.log, and $OUT/results.tgz re-packed after every step
# from $WORK/results/<step>/, so a run cut off by its time limit still returns what finished.
# Seen on the H100 (2026-11-23), to plan a 30-minute device budget (a fresh machine's start adds about a minute):
# env 1-2 s, tests 25-37 s, train:bf16 13-17 s, gptbench:bf16 13-15 s, profile 11-13 s, bench 34 s,
# sanitize 43-114 s, torch 200-280 s (torch.compile of three models). Put the steps that must land first.
# Since 2026-12 a session has 15 minutes of device time in all, and a call carries 64 MiB with the tree: the bundle's
# archive (36 MiB, 2026-12-07; the folder is 55 MiB) and the 9.4 MiB tree leave about 19 MiB for the harnesses. Two
# calls back to back (a warm machine waits 30 s): `env tests gptbench:bf16 train:moe` carrying
# dist/megatron-device.tgz, then `fa:--quick fa:--bench fa bw` carrying dist/fa-check (built for sm_90a,
# native/README.md) and dist/bw-check; one call may carry all three where they fit. About 4 minutes of device time.
# Waiting for their first GPU run (native/README.md, "Verification status"): the tests step's
# CudaBackendTest.scaleRowsAndRowDot and the bw step's "scale rows" / "row dot" lines (mixture-of-experts kernels), and
# `train:moe` (a mixture-of-experts model trained on the GPU in bf16 beside the CPU in fp32; about a minute).
set -uo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
B="$ROOT/dist/megatron-device"
if [[ ! -x "$B/megatron" && -f "$B.tgz" ]]; then   # the carried archive (the folder does not fit the carry limit)
  mkdir -p "$B" && tar xzf "$B.tgz" -C "$B"
fi
OUT="${OUT:-$ROOT/build/gpu-session}"
mkdir -p "$OUT"
LOG="$OUT/session.log"
WORK=/tmp/gpu-session
R="$WORK/results"
mkdir -p "$WORK" "$R"
STEPS=("$@")
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=(env tests train bench)

say() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
# step NAME SECONDS CMD...: runs with a time limit, output to the log, and records the exit status.
step() {
  local name="$1" limit="$2"; shift 2
  say "$name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout -k 10 "$limit" bash -c '"$@"' _ "$@" >>"$LOG" 2>&1
  local rc=$?
  say "$name: rc=$rc in $((SECONDS - t0)) s"
  tar czf "$OUT/results.tgz" -C "$WORK" results
}

env_step() {
  nvidia-smi; nvcc --version | tail -2
  ldconfig -p | grep -E 'libcuda.so|libcublasLt|libnccl' || true
  grep -m3 -E '#define (CUDA_VERSION|CUBLAS_VER_(MAJOR|MINOR|PATCH))' /usr/local/cuda/include/cuda.h /usr/local/cuda/include/cublas_api.h || true
  "$B/megatron" info
}

headers_step() {
  local inc=/usr/local/cuda/include
  local nccl=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl/include
  tar czf "$R/headers.tgz" -C / "${inc#/}/cuda.h" "${inc#/}/cudaTypedefs.h" "${inc#/}/cublasLt.h" \
    "${inc#/}/cublas_api.h" "${inc#/}/library_types.h" "${inc#/}/driver_types.h" "${inc#/}/vector_types.h" \
    "${inc#/}/host_defines.h" "${inc#/}/crt/host_defines.h" "${inc#/}/cuda_fp16.h" "${inc#/}/cuda_bf16.h" \
    "${nccl#/}/nccl.h" 2>&1 | grep -v 'Removing leading' || true
  ls -la "$R/headers.tgz"
}

tests_step() {
  rm -rf "$R/tests"; mkdir -p "$R/tests"
  OUT="$R/tests" "$B/run-gpu-tests.sh" "$@"
}

sanitize_step() {
  # memcheck and racecheck over the kernel tests; the JVM's own SIGSEGV-based tricks are not CUDA
  # accesses, so only the CUDA API and kernel reports count.
  local cls=org.megatronj.memory.cuda.CudaBackendTest
  mkdir -p "$R/sanitize"
  for tool in memcheck racecheck; do
    say "compute-sanitizer --tool $tool"
    MEGATRON_SANITIZER_RUN=1 compute-sanitizer --tool "$tool" --target-processes all --print-limit 20 \
      --log-file "$R/sanitize/$tool.txt" "$B/run-gpu-tests.sh" --select-class "$cls" > "$R/sanitize/$tool-run.txt" 2>&1
    echo "$tool exit $?"; tail -5 "$R/sanitize/$tool.txt"; grep -E 'tests (successful|failed)' "$R/sanitize/$tool-run.txt"
  done
  for h in dist/fa-check/flash_attention_check dist/bw-check/memory_bound_check; do
    [[ -x "$ROOT/$h" ]] || continue
    for tool in memcheck racecheck; do
      say "compute-sanitizer --tool $tool $h --quick"
      compute-sanitizer --tool "$tool" --print-limit 20 "$ROOT/$h" --quick > "$R/sanitize/$(basename "$h")-$tool.txt" 2>&1
      echo "$tool exit $?"; tail -4 "$R/sanitize/$(basename "$h")-$tool.txt"
    done
  done
}

train_step() {
  local d="$WORK/train"
  rm -rf "$d"; mkdir -p "$d" "$R/train"
  local tok=(--tokenizer-type GPT2BPETokenizer --vocab-file "$ROOT/data/gpt2/gpt2-vocab.json" --merge-file "$ROOT/data/gpt2/gpt2-merges.txt")
  "$B/megatron" preprocess --input "$ROOT/data/kjv/kjv-genesis-exodus.jsonl" --output-prefix "$d/kjv" "${tok[@]}" --append-eod --workers 8 || return 1
  local common=(--data-path "$d/kjv_text_document" --split 95,5,0 --data-cache-path "$d/cache" "${tok[@]}"
    --num-layers 4 --hidden-size 256 --num-attention-heads 4 --seq-length 256 --max-position-embeddings 256
    --micro-batch-size 8 --global-batch-size 16 --train-iters 100 --lr 3e-3 --min-lr 3e-4 --lr-decay-style cosine
    --lr-warmup-iters 10 --weight-decay 0.1 --clip-grad 1.0 --hidden-dropout 0 --attention-dropout 0
    --log-interval 10 --eval-interval 50 --eval-iters 2 --seed 1234)
  local rc=0
  for run in "$@"; do
    case "$run" in
      cpu)  "$B/megatron" pretrain gpt "${common[@]}" --device cpu --log-loss-to "$d/loss-cpu.csv" || rc=1 ;;
      fp32) "$B/megatron" pretrain gpt "${common[@]}" --device cuda --log-loss-to "$d/loss-cuda-fp32.csv" || rc=1 ;;
      bf16) "$B/megatron" pretrain gpt "${common[@]}" --device cuda --bf16 --use-flash-attn --log-loss-to "$d/loss-cuda-bf16.csv" \
              --save "$d/ckpt-bf16" --save-interval 50 || rc=1
            # Resume on the GPU from iteration 50 (a copy of the checkpoint folder without iteration 100).
            mkdir -p "$d/ckpt-resume" && cp -r "$d/ckpt-bf16/iter_0000050" "$d/ckpt-resume/" && echo 50 > "$d/ckpt-resume/latest_checkpointed_iteration.txt"
            "$B/megatron" pretrain gpt "${common[@]}" --device cuda --bf16 --use-flash-attn --load "$d/ckpt-resume" \
              --log-loss-to "$d/loss-cuda-bf16-resumed.csv" > "$R/train/resume.txt" 2>&1 || rc=1
            grep -E "iteration +(60|100)/" "$R/train/resume.txt" | cut -c1-200
            # The GPU-trained checkpoint generates the same greedy text on the GPU and on the CPU.
            for dev in cuda cpu; do
              "$B/megatron" generate --device "$dev" --load "$d/ckpt-bf16" --prompt "And God said" \
                --tokens-to-generate 24 --temperature 0 > "$R/train/generate-$dev.txt" 2>&1 || rc=1
              tail -3 "$R/train/generate-$dev.txt"
            done ;;
      fp16) "$B/megatron" pretrain gpt "${common[@]}" --device cuda --fp16 --use-flash-attn --log-loss-to "$d/loss-cuda-fp16.csv" || rc=1 ;;
      # A mixture-of-experts model (its layer, the routing on the host and the scale_rows/row_dot kernels) on the GPU in
      # bf16 against the CPU in fp32: the two loss curves should agree within bf16 noise.
      moe)  local moe=(--disable-bias-linear --swiglu --ffn-hidden-size 512 --position-embedding-type rope
              --normalization RMSNorm --num-experts 8 --moe-router-topk 2 --moe-ffn-hidden-size 256
              --moe-aux-loss-coeff 1e-2 --moe-z-loss-coeff 1e-3 --moe-shared-expert-intermediate-size 256 --train-iters 30)
            "$B/megatron" pretrain gpt "${common[@]}" "${moe[@]}" --device cpu --log-loss-to "$d/loss-moe-cpu.csv" \
              > "$R/train/moe-cpu.txt" 2>&1 || rc=1
            "$B/megatron" pretrain gpt "${common[@]}" "${moe[@]}" --device cuda --bf16 --use-flash-attn \
              --log-loss-to "$d/loss-moe-cuda-bf16.csv" > "$R/train/moe-cuda-bf16.txt" 2>&1 || rc=1
            grep -hE "iteration +(10|30)/|rror" "$R/train/moe-cpu.txt" "$R/train/moe-cuda-bf16.txt" | cut -c1-260 ;;
    esac
  done
  cp "$d"/*.csv "$R/train/" 2>/dev/null
  return $rc
}

bench_step() {
  rm -rf "$R/bench"; mkdir -p "$R/bench"
  "$B/run-gpu-bench.sh" --out "$R/bench" "$@"
  local rc=$?
  cat "$R/bench"/*.md
  return $rc
}

torch_step() {
  mkdir -p "$R/torch"
  PYTHONUNBUFFERED=1 OUT="$R/torch" python3 "$ROOT/dist/baselines/gpt_torch_gpu.py"
}

gptbench_step() {
  mkdir -p "$R/gptbench"
  OUT="$R/gptbench" GPT_GPU_WORK="$WORK/gptbench" MEGATRON_BIN="$B/megatron" bash "$ROOT/bench/gpt-gpu.sh" "$@"
  cp "$WORK"/gptbench/train-*.log "$R/gptbench/" 2>/dev/null
}

profile_step() {  # GPT-2 124M and 345M bf16: GPU time per kernel (MEGATRON_CUDA_PROFILE) and a JFR recording
  mkdir -p "$R/profile"
  for model in 124M 345M; do
    MEGATRON_CUDA_PROFILE="$R/profile/kernels-$model.txt" GPT_GPU_MODELS=$model GPT_GPU_ITERS=12 OUT="$R/profile" \
      GPT_GPU_WORK="$WORK/profile" MEGATRON_BIN="$B/megatron" GPT_GPU_EXTRA="--profile $R/profile/gpt$model.jfr" \
      bash "$ROOT/bench/gpt-gpu.sh" bf16
    head -45 "$R/profile/kernels-$model.txt"
  done
}

harness_step() {  # harness_step NAME BINARY [ARGS]
  local name="$1" bin="$ROOT/$2"; shift 2
  mkdir -p "$R/$name"
  [[ -x "$bin" ]] || { echo "$bin is missing: build it first (native/src/test/cuda/)"; return 1; }
  local file=output.txt  # one file per argument list: fa:--quick and fa:--bench in one session keep both
  [[ $# -gt 0 ]] && file="output$(printf '%s' "$@" | tr -c 'A-Za-z0-9' '_').txt"
  "$bin" "$@" 2>&1 | tee "$R/$name/$file"
  return "${PIPESTATUS[0]}"
}

export -f say env_step headers_step tests_step sanitize_step train_step bench_step torch_step gptbench_step profile_step harness_step
export ROOT B OUT LOG WORK R
for s in "${STEPS[@]}"; do
  name="${s%%:*}"; args=()
  [[ "$s" == *:* ]] && IFS=, read -r -a args <<<"${s#*:}"
  case "$name" in
    env) step env 60 env_step ;;
    headers) step headers 30 headers_step ;;
    tests) step tests 200 tests_step "${args[@]}" ;;
    sanitize) step sanitize 300 sanitize_step ;;
    train) [[ ${#args[@]} -gt 0 ]] || args=(fp32 cpu); step train 150 train_step "${args[@]}" ;;
    bench) step bench 120 bench_step "${args[@]}" ;;
    torch) step torch 300 torch_step ;;
    gptbench) step gptbench 300 gptbench_step "${args[@]}" ;;
    profile) step profile 240 profile_step ;;
    fa) step fa 120 harness_step fa dist/fa-check/flash_attention_check "${args[@]}" ;;
    bw) step bw 90 harness_step bw dist/bw-check/memory_bound_check "${args[@]}" ;;
    *) say "unknown step $name (expected env headers tests sanitize train bench gptbench torch fa bw)" ;;
  esac
done
say "done"
grep -E '^== |tests (successful|failed|found)|FAILED|Exception' "$LOG" | tail -60
