#!/usr/bin/env bash
# ci/quickstart.sh: Megatron-J's first run. Trains a small GPT on the CPU on the corpus that ships
# with the project (Genesis and Exodus of the King James Bible, data/kjv/), in a few minutes, then
# plots the loss and generates a sample. Run it again to resume from the last checkpoint.
#   MEGATRON_QUICKSTART_DIR  where outputs go (default: build/quickstart)
#   QUICKSTART_ITERS         training iterations (default: 300)
#   MEGATRON_BIN             the megatron launcher to use (default: ./megatron)
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
WORK="${MEGATRON_QUICKSTART_DIR:-$ROOT/build/quickstart}"
ITERS="${QUICKSTART_ITERS:-300}"
MEGATRON="${MEGATRON_BIN:-$ROOT/megatron}"   # MEGATRON_BIN: another launcher (development)
TOKENIZER=(--tokenizer-type GPT2BPETokenizer
           --vocab-file "$ROOT/data/gpt2/gpt2-vocab.json" --merge-file "$ROOT/data/gpt2/gpt2-merges.txt")
mkdir -p "$WORK"

echo "== 1/4 tokenize data/kjv/kjv-genesis-exodus.jsonl (GPT-2 BPE) -> $WORK/kjv_text_document.{bin,idx}"
if [[ ! -f "$WORK/kjv_text_document.idx" ]]; then
  "$MEGATRON" preprocess --input "$ROOT/data/kjv/kjv-genesis-exodus.jsonl" --output-prefix "$WORK/kjv" \
    "${TOKENIZER[@]}" --append-eod
fi

echo "== 2/4 pretrain a 2-layer GPT (hidden 64, 4 heads, 64 tokens per sample) for $ITERS iterations"
"$MEGATRON" pretrain gpt \
  --data-path "$WORK/kjv_text_document" --split 95,5,0 --data-cache-path "$WORK/cache" "${TOKENIZER[@]}" \
  --num-layers 2 --hidden-size 64 --num-attention-heads 4 --seq-length 64 --max-position-embeddings 64 \
  --micro-batch-size 8 --global-batch-size 8 --train-iters "$ITERS" \
  --lr 6e-3 --min-lr 6e-4 --lr-decay-style cosine --lr-warmup-iters 20 --weight-decay 0.1 --clip-grad 1.0 \
  --hidden-dropout 0 --attention-dropout 0 \
  --log-interval 25 --eval-interval 100 --eval-iters 4 \
  --save "$WORK/checkpoints" --save-interval 100 --load "$WORK/checkpoints" --log-loss-to "$WORK/loss.csv" \
  --override-opt_param-scheduler   # a resumed run with more QUICKSTART_ITERS decays over its new length

echo "== 3/4 plot the loss -> $WORK/loss.png"
"$MEGATRON" plot-loss "$WORK/loss.csv" -o "$WORK/loss.png" --title "GPT on Genesis+Exodus (KJV)"

echo "== 4/4 generate"
"$MEGATRON" generate --load "$WORK/checkpoints" --prompt "And God said" --tokens-to-generate 40 \
  --temperature 0.8 --top-k 40 --seed 1
