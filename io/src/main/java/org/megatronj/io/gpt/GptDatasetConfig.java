package org.megatronj.io.gpt;

import java.nio.file.Path;

/**
 * What defines the GPT samples of a run — Megatron's {@code GPTDatasetConfig} fields that matter to
 * index building and sample assembly.
 *
 * @param randomSeed {@code --seed}: seeds every split's shuffles (default 1234)
 * @param sequenceLength {@code --seq-length} {@code L}
 * @param split the {@code --split} string verbatim, or null with per-split data paths
 * @param splitMatrix {@code split} parsed, or null with per-split data paths
 * @param tokenizer the tokenizer's identity in the cache description
 * @param eodId the end-of-document id ({@code tokenizer.eod})
 * @param padId the pad id for short samples; Megatron uses -1 whenever the tokenizer has none
 *              or it collides with another special token (GPT-2 BPE)
 * @param resetPositionIds {@code --reset-position-ids}: positions restart after each EOD
 * @param resetAttentionMask {@code --reset-attention-mask}: tokens do not attend across an EOD
 * @param eodMaskLoss {@code --eod-mask-loss}: no loss on EOD inputs
 * @param interDocumentMasking {@code --dataloader-inter-document-masking}: tokens attend only within their
 *        document of the document index (whatever its tokens), and positions restart at each document
 * @param addExtraToken samples hold {@code L+1} tokens so labels are inputs shifted by one (always true in Megatron's trainer)
 * @param dropLastPartialValidationSequence drop (true, Megatron's default) or pad the last short validation sample
 * @param pathToCache {@code --data-cache-path}, or null for Megatron's default {@code <prefix>/cache/GPTDataset_indices}
 * @param midLevelDatasetSurplus {@code --mid-level-dataset-surplus} (0.005): extra samples built per blended dataset
 */
public record GptDatasetConfig(long randomSeed, int sequenceLength, String split, SplitMatrix splitMatrix,
                               TokenizerIdentity tokenizer, int eodId, int padId, boolean resetPositionIds,
                               boolean resetAttentionMask, boolean eodMaskLoss, boolean interDocumentMasking,
                               boolean addExtraToken, boolean dropLastPartialValidationSequence, Path pathToCache,
                               double midLevelDatasetSurplus) {
    public static final long DEFAULT_SEED = 1234;
    public static final double DEFAULT_SURPLUS = 0.005;

    public GptDatasetConfig {
        if (sequenceLength < 2) {
            throw new IllegalArgumentException("--seq-length must be at least 2, got " + sequenceLength);
        }
        if (randomSeed < 0 || randomSeed > 0xffffffffL) {
            throw new IllegalArgumentException("--seed must be in [0, 2^32), got " + randomSeed);
        }
        if ((split == null) != (splitMatrix == null)) {
            throw new IllegalArgumentException("split and splitMatrix go together (both null only with per-split data paths)");
        }
        if (!(midLevelDatasetSurplus >= 0)) {
            throw new IllegalArgumentException("--mid-level-dataset-surplus must be >= 0, got " + midLevelDatasetSurplus);
        }
    }

    /** A config with Megatron's defaults for everything but the seed, length, split and tokenizer. */
    public static GptDatasetConfig of(long seed, int sequenceLength, String split, TokenizerIdentity tokenizer, int eodId) {
        return new GptDatasetConfig(seed, sequenceLength, split, split == null ? null : SplitMatrix.parse(split), tokenizer,
                eodId, -1, false, false, false, false, true, true, null, DEFAULT_SURPLUS);
    }

    public GptDatasetConfig withCache(Path cache) {
        return new GptDatasetConfig(randomSeed, sequenceLength, split, splitMatrix, tokenizer, eodId, padId, resetPositionIds,
                resetAttentionMask, eodMaskLoss, interDocumentMasking, addExtraToken, dropLastPartialValidationSequence, cache,
                midLevelDatasetSurplus);
    }

    public GptDatasetConfig withMasks(boolean resetPositions, boolean resetAttention, boolean eodMask) {
        return new GptDatasetConfig(randomSeed, sequenceLength, split, splitMatrix, tokenizer, eodId, padId, resetPositions,
                resetAttention, eodMask, interDocumentMasking, addExtraToken, dropLastPartialValidationSequence, pathToCache,
                midLevelDatasetSurplus);
    }

    public GptDatasetConfig withInterDocumentMasking(boolean masking) {
        return new GptDatasetConfig(randomSeed, sequenceLength, split, splitMatrix, tokenizer, eodId, padId, resetPositionIds,
                resetAttentionMask, eodMaskLoss, masking, addExtraToken, dropLastPartialValidationSequence, pathToCache,
                midLevelDatasetSurplus);
    }

    public GptDatasetConfig withExtraToken(boolean extra) {
        return new GptDatasetConfig(randomSeed, sequenceLength, split, splitMatrix, tokenizer, eodId, padId, resetPositionIds,
                resetAttentionMask, eodMaskLoss, interDocumentMasking, extra, dropLastPartialValidationSequence, pathToCache,
                midLevelDatasetSurplus);
    }

    int extraTokens() {
        return addExtraToken ? 1 : 0;
    }
}
