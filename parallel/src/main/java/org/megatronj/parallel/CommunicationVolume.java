package org.megatronj.parallel;

/**
 * Bytes one rank sends per training iteration, by kind of parallelism, for bandwidth-optimal
 * (ring) collectives: an all-reduce of N bytes over g ranks sends {@code 2 (g-1)/g N} per rank, a
 * reduce-scatter or all-gather {@code (g-1)/g N}. An estimate for planning, not a measurement.
 *
 * <ul>
 *   <li><b>TP</b>: per transformer layer and micro-batch, two all-reduces of the {@code [s, b, h]}
 *       activations in forward (after attention and after the MLP) and two in backward (their
 *       copy-to conjugates); sequence parallelism replaces each by an all-gather plus a
 *       reduce-scatter of the same total volume. Full recompute adds the forward's two again. The
 *       embedding's forward all-reduce and the output layer's backward all-reduce are counted for
 *       the first and last stage; the three {@code [s, b]} fp32 cross-entropy reductions are
 *       ignored.</li>
 *   <li><b>PP</b>: per micro-batch, an inner stage sends one activation forward and one gradient
 *       backward ({@code [s/t, b, h]} under sequence parallelism), for each of its model chunks when
 *       interleaved. This is the bound for an inner stage; the first and last send half.</li>
 *   <li><b>DP</b>: one all-reduce of this rank's gradients, or with the distributed optimizer a
 *       reduce-scatter of the gradients plus an all-gather of the updated weights.</li>
 * </ul>
 *
 * @param tensorParallelBytes bytes sent in tensor-parallel collectives
 * @param pipelineBytes       bytes sent to neighbouring pipeline stages (inner stage)
 * @param dataParallelBytes   bytes sent in the gradient reduction (and weight all-gather)
 */
public record CommunicationVolume(double tensorParallelBytes, double pipelineBytes, double dataParallelBytes) {

    /**
     * One iteration's workload.
     *
     * @param parametersPerRank parameters this rank holds (its TP/PP shard of the model)
     * @param activationBytes   bytes per activation element (2 for bf16/fp16, 4 for fp32)
     * @param gradBytes         bytes per gradient element in the DP reduction (4 for fp32 main grads)
     * @param paramBytes        bytes per weight element all-gathered by the distributed optimizer
     */
    public record Workload(int numLayers, int hiddenSize, int seqLength, int microBatchSize, int numMicroBatches,
                           long parametersPerRank, int activationBytes, int gradBytes, int paramBytes, boolean fullRecompute) {
    }

    public double totalBytes() {
        return tensorParallelBytes + pipelineBytes + dataParallelBytes;
    }

    public static CommunicationVolume estimate(ParallelConfig config, int dataParallelSize, boolean distributedOptimizer, Workload w) {
        int t = config.tensorModelParallelSize();
        int p = config.pipelineModelParallelSize();
        double activation = (double) w.seqLength() * w.microBatchSize() * w.hiddenSize() * w.activationBytes();

        double tp = 0;
        if (t > 1) {
            double allReduce = 2.0 * (t - 1) / t * activation;
            int perLayer = w.fullRecompute() ? 6 : 4;
            double layers = (double) w.numLayers() / p;
            // embedding forward (first stage) and output-layer backward (last stage); with PP = 1 both on this rank
            int embeddingReductions = p == 1 ? 2 : 1;
            tp = w.numMicroBatches() * allReduce * (layers * perLayer + embeddingReductions);
        }

        double pp = 0;
        if (p > 1) {
            double message = config.sequenceParallelActive() ? activation / t : activation;
            int chunks = config.interleaved() ? config.virtualPipelineModelParallelSize(w.numLayers()) : 1;
            pp = 2.0 * w.numMicroBatches() * chunks * message;
        }

        double dp = 0;
        if (dataParallelSize > 1) {
            double share = (double) (dataParallelSize - 1) / dataParallelSize * w.parametersPerRank();
            dp = distributedOptimizer ? share * (w.gradBytes() + w.paramBytes()) : 2 * share * w.gradBytes();
        }
        return new CommunicationVolume(tp, pp, dp);
    }
}
