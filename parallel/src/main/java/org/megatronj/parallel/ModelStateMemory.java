package org.megatronj.parallel;

/**
 * Bytes per parameter of the model states (weights, gradients, fp32 master weights, Adam
 * moments), as the table of Megatron's distributed-optimizer guide gives them. Without the
 * distributed optimizer every data-parallel rank keeps everything; with it, the fp32 optimizer
 * states (and fp32 main gradients where they are separate) are split over the DP ranks.
 * Activations and temporary buffers are not counted.
 */
public enum ModelStateMemory {
    /** fp16 weights and gradients, fp32 master weights, main grads and moments: 20, or 4 + 16/d. */
    FP16_PARAMS_FP16_GRADS(4, 16),
    /** bf16 weights, fp32 gradients accumulated in place, fp32 master weights and moments: 18, or 6 + 12/d. */
    BF16_PARAMS_FP32_GRADS(6, 12),
    /** fp32 weights and gradients, fp32 moments: 16, or 8 + 8/d. */
    FP32(8, 8);

    private final int replicatedBytes;
    private final int shardableBytes;

    ModelStateMemory(int replicatedBytes, int shardableBytes) {
        this.replicatedBytes = replicatedBytes;
        this.shardableBytes = shardableBytes;
    }

    /** Bytes per parameter that every DP rank holds whatever the optimizer (the model's weights and gradients). */
    public int replicatedBytes() {
        return replicatedBytes;
    }

    /** Bytes per parameter of optimizer state that the distributed optimizer splits over DP ranks. */
    public int shardableBytes() {
        return shardableBytes;
    }

    /** Bytes per parameter on one rank: {@code replicated + shardable} or, distributed, {@code replicated + shardable / dp}. */
    public double bytesPerParameter(boolean distributedOptimizer, int dataParallelSize) {
        if (dataParallelSize < 1) {
            throw new IllegalArgumentException("data-parallel size must be >= 1, got " + dataParallelSize);
        }
        return distributedOptimizer ? replicatedBytes + (double) shardableBytes / dataParallelSize : replicatedBytes + shardableBytes;
    }

    /** Model-state bytes on one rank holding {@code parametersPerRank} parameters (its TP/PP shard of the model). */
    public double bytesPerRank(long parametersPerRank, boolean distributedOptimizer, int dataParallelSize) {
        return parametersPerRank * bytesPerParameter(distributedOptimizer, dataParallelSize);
    }
}
