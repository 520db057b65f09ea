#!/usr/bin/env bash
# bench/gpt-gpu.sh: GPT training throughput of `megatron pretrain gpt --device cuda` on the GPU
# machine, with the shapes of ../shared/baselines/gpt_torch_gpu.py (GPT-2 124M: 12 layers, hidden
# 768, 12 heads, seq 1024, micro-batch 16; GPT 345M: 24/1024/16, seq 1024, micro-batch 8; vocab
# 50304), so that bench/gpu-report.py can set the two side by side. Runs from the device bundle
# (ci/device-bundle.sh); the corpus is the bundled KJV text (the tokens' content does not change
# the speed). Prints one JSON line per run and writes them to $OUT/gpt-gpu.jsonl.
#   bench/gpt-gpu.sh [PRECISION...]    precisions: bf16 (default), fp16, fp32
#   GPT_GPU_ITERS=30 GPT_GPU_MODELS="124M 345M" MEGATRON_BIN=dist/megatron-device/megatron
#   GPT_GPU_WRAP="nsys profile -o /tmp/p"   a command the runs are started under (a profiler)
#   GPT_GPU_EXTRA="--profile /tmp/run.jfr"  more pretrain flags
set -uo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
MEGATRON="${MEGATRON_BIN:-$ROOT/dist/megatron-device/megatron}"
ITERS="${GPT_GPU_ITERS:-30}"
MODELS="${GPT_GPU_MODELS:-124M 345M}"
OUT="${OUT:-$ROOT/build/gpt-gpu}"
WORK="${GPT_GPU_WORK:-/tmp/gpt-gpu}"
PRECISIONS=("$@")
[[ ${#PRECISIONS[@]} -gt 0 ]] || PRECISIONS=(bf16)
mkdir -p "$OUT" "$WORK"
TOK=(--tokenizer-type GPT2BPETokenizer --vocab-file "$ROOT/data/gpt2/gpt2-vocab.json" --merge-file "$ROOT/data/gpt2/gpt2-merges.txt")
if [[ ! -f "$WORK/kjv_text_document.idx" ]]; then
  "$MEGATRON" preprocess --input "$ROOT/data/kjv/kjv-genesis-exodus.jsonl" --output-prefix "$WORK/kjv" "${TOK[@]}" \
    --append-eod >/dev/null || exit 1
fi

shape() {  # layers hidden heads seq micro-batch
  case "$1" in
    124M) echo "12 768 12 1024 16" ;;
    345M) echo "24 1024 16 1024 8" ;;
    *) echo "bench/gpt-gpu.sh: unknown model $1 (expected 124M or 345M)" >&2; return 1 ;;
  esac
}

for model in $MODELS; do
  read -r L H NH T MB <<<"$(shape "$model")" || exit 1
  for prec in "${PRECISIONS[@]}"; do
    flags=()
    case "$prec" in
      bf16) flags=(--bf16 --use-flash-attn) ;;
      fp16) flags=(--fp16 --use-flash-attn) ;;
      fp32) flags=() ;;
      *) echo "bench/gpt-gpu.sh: unknown precision $prec (expected bf16, fp16 or fp32)" >&2; exit 1 ;;
    esac
    log="$WORK/train-$model-$prec.log"
    # shellcheck disable=SC2086
    ${GPT_GPU_WRAP:-} "$MEGATRON" pretrain gpt --device cuda "${flags[@]}" ${GPT_GPU_EXTRA:-} \
      --data-path "$WORK/kjv_text_document" --split 100,0,0 --data-cache-path "$WORK/cache" "${TOK[@]}" \
      --num-layers "$L" --hidden-size "$H" --num-attention-heads "$NH" --seq-length "$T" --max-position-embeddings "$T" \
      --micro-batch-size "$MB" --global-batch-size "$MB" --train-iters "$ITERS" \
      --lr 1e-4 --min-lr 1e-5 --lr-decay-style cosine --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.95 \
      --clip-grad 1.0 --hidden-dropout 0 --attention-dropout 0 --log-interval 1 --eval-iters 0 >"$log" 2>&1
    rc=$?
    # Median of the per-iteration times after the first third (warm-up: JIT, allocator, cuBLASLt plans).
    python3 - "$log" "$model" "$prec" "$L" "$H" "$T" "$MB" "$rc" <<'EOF' | tee -a "$OUT/gpt-gpu.jsonl"
import json, re, statistics, sys
log, model, prec, L, H, T, MB, rc = sys.argv[1:]
L, H, T, MB, V = int(L), int(H), int(T), int(MB), 50304
text = open(log, errors='replace').read()
ms = [float(m) for m in re.findall(r'elapsed time per iteration \(ms\): ([0-9.]+)', text)]
losses = re.findall(r'lm loss: ([0-9.E+-]+)', text)
row = dict(what='train', model=model, precision=prec, mb=MB, T=T, rc=int(rc))
if ms:
    step = statistics.median(ms[len(ms) // 3:])
    fpt = 6 * (12 * L * H * H + V * H) + 12 * L * H * T       # the baseline's FLOPs per token
    tok = MB * T / (step / 1e3)
    row.update(step_ms=step, tok_s=tok, tflops=fpt * tok / 1e12, mfu_989=fpt * tok / 989e12,
               first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None)
else:
    row['error'] = '\n'.join(text.strip().splitlines()[-5:])[:600]
print(json.dumps(row))
EOF
  done
done
