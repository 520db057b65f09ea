package org.megatronj.model;

/**
 * Model FLOPs as Megatron's {@code num_floating_point_operations} counts them (GPT, no activation
 * recompute), for throughput and MFU in logs and benchmarks. Two of its versions are kept:
 * <ul>
 * <li>{@link #trainingFlopsPerIteration}: the formula Megatron used until its commit 8873b55d6a (2025-03),
 *     which the benchmarks and the PyTorch baselines they compare with use:
 * <pre>
 *   flops = 12 B s L h^2 ( (1 + ng/np + s/h) (np d / h) + (ffn / h) k (swiglu ? 3/2 : 1)
 *                          + (shared / h) (swiglu ? 3/2 : 1) + V / (2 L h) )
 * </pre>
 *     12 = 3 (forward, weight-grad, data-grad) x 2 (two GEMMs of each size per block) x 2 (multiply-add).
 *     For GPT-2 this is the familiar {@code 72 B s L h^2 (1 + s/(6h) + V/(12 L h))}. The causal mask's
 *     saving is not subtracted. Dense: ffn = {@code --ffn-hidden-size}, k = 1, shared = 0. With
 *     {@code --num-experts} that version counts <em>every</em> layer as an MoE layer whatever
 *     {@code --moe-layer-freq} says: ffn = {@code --moe-ffn-hidden-size}, k = {@code --moe-router-topk},
 *     shared = {@code --moe-shared-expert-intermediate-size}.</li>
 * <li>{@link #megatronLoggedFlopsPerIteration}: today's Megatron, which its log's {@code --log-throughput}
 *     uses: causal attention counted at half, and dense and MoE layers counted apart by
 *     {@code --moe-layer-freq}.</li>
 * </ul>
 * Neither counts the router's GEMM, the norms or the activations, as Megatron's do not.
 */
public final class FlopCounter {
    private FlopCounter() {
    }

    /**
     * FLOPs of one training iteration over {@code batchSize} sequences of the config's seq length, as Megatron's
     * {@code num_floating_point_operations} before its commit 8873b55d6a (the class comment's formula).
     */
    public static double trainingFlopsPerIteration(TransformerConfig c, long batchSize) {
        return trainingFlopsPerIteration(c, batchSize, 1);
    }

    /**
     * {@link #trainingFlopsPerIteration(TransformerConfig, long)} of a run on {@code tensorParallelSize} tensor ranks:
     * Megatron counts the logits of the vocabulary padded for them ({@code args.padded_vocab_size}).
     */
    public static double trainingFlopsPerIteration(TransformerConfig c, long batchSize, int tensorParallelSize) {
        double h = c.hiddenSize();
        double s = c.seqLength();
        double attentionRatio = (double) c.numAttentionHeads() * c.kvChannels() / h;
        double attention = (1 + (double) c.numQueryGroups() / c.numAttentionHeads() + s / h) * attentionRatio;
        if (c.mla() != null) {   // Megatron's MLA terms in the same units (12 h^2 per token), the causal half not taken
            attention = (mlaProjectionFlopsPerToken(c) + 2 * s * mlaCoreFlopsPerPair(c)) / (12.0 * h * h);
        }
        double gatedLinear = c.swiglu() ? 1.5 : 1.0;
        MoeConfig moe = c.moe();
        double ffn = moe == null ? c.ffnHiddenSize() : moe.ffnHiddenSize();
        double routedTo = moe == null ? 1 : moe.routerTopk();
        double shared = moe == null ? 0 : moe.sharedExpertIntermediateSize();
        double mlp = ffn / h * routedTo * gatedLinear + shared / h * gatedLinear;
        double logits = c.paddedVocabSize(tensorParallelSize) / (2.0 * c.numLayers() * h);
        return 12.0 * batchSize * s * c.numLayers() * h * h * (attention + mlp + logits);
    }

    /**
     * FLOPs of one training iteration as today's Megatron counts them for its log's {@code --log-throughput}
     * ({@code num_floating_point_operations}, {@code transformer_flops}): per token {@code 6 h} times the MLPs'
     * widths, {@code ffn x (swiglu ? 3 : 2)} for each dense layer and {@code (moe_ffn x k + shared) x (swiglu ? 3 : 2)}
     * for each MoE layer of {@code --moe-layer-freq}; {@code 6 (h (np + 2 ng) d + np d h)} per layer for the attention
     * projections; {@code 6 h V} for the logits; and causal attention's {@code QK^T} and {@code PV} counted for the half
     * of the score matrix the mask keeps: {@code 6 L b s^2 (np d)}. With {@code --mtp-num-layers N} the N depths'
     * layers count as layers (of the decoder's last layer's kind), the logits N + 1 times, and {@code 6 N (3h + 2h^2)}
     * per token for their norms and eh_proj, as Megatron's.
     */
    public static double megatronLoggedFlopsPerIteration(TransformerConfig c, long batchSize) {
        return megatronLoggedFlopsPerIteration(c, batchSize, 1);
    }

    /**
     * {@link #megatronLoggedFlopsPerIteration(TransformerConfig, long)} of a run on {@code tensorParallelSize} tensor
     * ranks: Megatron counts the logits of the vocabulary padded for them ({@code args.padded_vocab_size}).
     */
    public static double megatronLoggedFlopsPerIteration(TransformerConfig c, long batchSize, int tensorParallelSize) {
        double h = c.hiddenSize();
        double s = c.seqLength();
        double q = (double) c.numAttentionHeads() * c.kvChannels();
        double kv = (double) c.numQueryGroups() * c.kvChannels();
        int ffnExpansion = c.swiglu() ? 3 : 2;
        MoeConfig moe = c.moe();
        // MTP: each depth's transformer layer counts as one more layer of the decoder's last layer's kind, its norms and
        // eh_proj add 6 (3h + 2h^2) per token, and its logits one more 6 h V (Megatron's MTP term)
        int mtp = c.mtpNumLayers();
        int moeLayers = moeLayerCount(c) + (c.mtpLayersAreMoe() ? mtp : 0);
        int layers = c.numLayers() + mtp;
        int denseLayers = layers - moeLayers;
        double routedTo = moe == null ? 0 : moe.routerTopk();
        double moeFfn = moe == null ? 0 : moe.ffnHiddenSize();
        double shared = moe == null ? 0 : moe.sharedExpertIntermediateSize();
        double mlp = 6.0 * h * ((double) c.ffnHiddenSize() * ffnExpansion * denseLayers
                + moeFfn * routedTo * ffnExpansion * moeLayers
                + shared * ffnExpansion * moeLayers);
        double attentionProjections = 6.0 * (h * (q + 2 * kv) + q * h);
        double core = 6.0 * q;   // per (query, key) pair of a layer: QK^T and PV at 2 FLOPs each, x3, the causal half
        if (c.mla() != null) {
            attentionProjections = mlaProjectionFlopsPerToken(c);
            core = mlaCoreFlopsPerPair(c);
        }
        double logits = 6.0 * h * c.paddedVocabSize(tensorParallelSize) * (mtp + 1);
        double mtpNormsAndProjections = 6.0 * mtp * (3 * h + 2 * h * h);
        double tokens = (double) batchSize * s;
        return tokens * (mlp + layers * attentionProjections + mtpNormsAndProjections + logits)
                + batchSize * s * s * layers * core;
    }

    /**
     * Megatron's MLA branch of {@code num_floating_point_operations}, token-linear part per layer and token:
     * {@code 6 (q_term + kv_lora (h + np (qk + v) + 1) + h pe + np v h)} with {@code q_term = h np (qk + pe)} without
     * a query latent, else {@code q_lora (h + np (qk + pe) + 1)} (the +1s are its norms' count).
     */
    static double mlaProjectionFlopsPerToken(TransformerConfig c) {
        MlaConfig m = c.mla();
        double h = c.hiddenSize();
        double np = c.numAttentionHeads();
        double qTerm = m.hasQueryLatent() ? m.qLoraRank() * (h + np * m.qHeadDim() + 1) : h * np * m.qHeadDim();
        return 6.0 * (qTerm + m.kvLoraRank() * (h + np * (m.qkHeadDim() + m.vHeadDim()) + 1) + h * m.qkPosEmbHeadDim()
                + np * m.vHeadDim() * h);
    }

    /** Megatron's MLA core-attention term per layer and (query, key) pair: {@code 6 (np (qk + pe) / 2 + np v / 2)}. */
    static double mlaCoreFlopsPerPair(TransformerConfig c) {
        MlaConfig m = c.mla();
        double np = c.numAttentionHeads();
        return 6.0 * (np * m.qHeadDim() / 2 + np * m.vHeadDim() / 2);
    }

    /** How many of the layers are MoE layers ({@link TransformerConfig#isMoeLayer}); 0 for a dense model. */
    static int moeLayerCount(TransformerConfig c) {
        if (c.moe() == null) {
            return 0;
        }
        int n = 0;
        for (boolean moe : c.moe().moeLayers(c.numLayers())) {
            n += moe ? 1 : 0;
        }
        return n;
    }

    /** Training FLOPs per token (forward + backward). */
    public static double trainingFlopsPerToken(TransformerConfig c) {
        return trainingFlopsPerIteration(c, 1) / c.seqLength();
    }

    /** Model FLOPs utilisation: achieved FLOP/s over the hardware's peak FLOP/s. */
    public static double mfu(double flopsPerIteration, double secondsPerIteration, double peakFlopsPerSecond) {
        if (!(secondsPerIteration > 0) || !(peakFlopsPerSecond > 0)) {
            throw new IllegalArgumentException("MFU needs a positive iteration time and peak, got " + secondsPerIteration
                    + " s and " + peakFlopsPerSecond + " FLOP/s");
        }
        return flopsPerIteration / secondsPerIteration / peakFlopsPerSecond;
    }
}
