package org.megatronj.parallel.train;

import java.util.ArrayList;
import java.util.List;

import org.megatronj.model.MoeConfig;
import org.megatronj.model.Normalization;
import org.megatronj.model.TransformerConfig;

/**
 * Megatron's {@code report_theoretical_memory} for GPT models, dense or with mixture-of-experts layers: the
 * memory its formulas expect on the most loaded rank, printed by rank 0 with the first memory report. MoE
 * layers ({@code --moe-layer-freq}) count a router ({@code h x E}), E routed experts of
 * {@code --moe-ffn-hidden-size} (top-k of them as active parameters), the shared experts and their gate in
 * place of the dense MLP; the routed experts are split by the expert tensor-parallel size (here the tensor
 * size; expert model parallelism is 1) and their optimizer state by the expert data-parallel size. As in
 * Megatron, the activations do not depend on the experts. Weights and optimizer assume
 * bf16 training as Megatron's do (18 bytes a parameter: bf16 weight, fp32 main weight, gradient and two
 * Adam moments; 6 + 12 / DP with the distributed optimizer), whatever the run's precision. Activations
 * follow Korthikanti et al.'s Table 2 with sequence parallelism and selective recompute, else Megatron's
 * "precise, without SP" count. The lines are Megatron's, formatted as Python formats them.
 */
public final class TheoreticalMemory {
    private static final double MB = 1024.0 * 1024.0;

    /**
     * The run's layout and batch as the formulas take them.
     *
     * @param virtualPipelineParallel the interleaved schedule's model chunks per stage, or 0 without it
     * @param dataParallel            data-parallel size without the context-parallel ranks (Megatron's
     *                                {@code args.data_parallel_size})
     * @param numMicrobatches         micro-batches per iteration on each data-parallel rank
     * @param contextParallel         {@code --context-parallel-size}: only the experts' data-parallel size (world size
     *                                over expert-tensor x expert-model x pipeline sizes) depends on it
     */
    public record Setup(int tensorParallel, int pipelineParallel, int virtualPipelineParallel, int dataParallel,
                        boolean distributedOptimizer, boolean sequenceParallel, boolean selectiveRecompute,
                        int microBatchSize, int numMicrobatches, int contextParallel) {

        /** Without context parallelism. */
        public Setup(int tensorParallel, int pipelineParallel, int virtualPipelineParallel, int dataParallel,
                     boolean distributedOptimizer, boolean sequenceParallel, boolean selectiveRecompute,
                     int microBatchSize, int numMicrobatches) {
            this(tensorParallel, pipelineParallel, virtualPipelineParallel, dataParallel, distributedOptimizer,
                    sequenceParallel, selectiveRecompute, microBatchSize, numMicrobatches, 1);
        }
    }

    /** The weight-and-optimizer, activation and total megabytes, and the lines Megatron prints (last one blank). */
    public record Report(double weightAndOptimizerMb, double activationMb, double totalMb, List<String> lines) {
    }

    private TheoreticalMemory() {
    }

    public static Report report(TransformerConfig c, Setup s) {
        List<String> lines = new ArrayList<>();
        double weightAndOptimizer = weightAndOptimizerBytes(c, s, lines) / MB;
        double activation;
        if (s.sequenceParallel() && s.selectiveRecompute()) {
            lines.add("compute_activation_memory with SP");
            activation = activationBytesWithSp(c, s, lines) / MB;
        } else {
            lines.add("compute_activation_memory_without_sp");
            activation = activationBytesWithoutSp(c, s, lines) / MB;
        }
        double total = weightAndOptimizer + activation;
        lines.add("Theoretical memory footprints: weight and optimizer=" + f(weightAndOptimizer, 2) + " MB, activation="
                + f(activation, 2) + " MB, total=" + f(total, 2) + " MB");
        lines.add("");
        return new Report(weightAndOptimizer, activation, total, List.copyOf(lines));
    }

    private static double weightAndOptimizerBytes(TransformerConfig c, Setup s, List<String> lines) {
        double h = c.hiddenSize();
        double queryToHidden = (double) c.kvChannels() * c.numAttentionHeads() / h;
        double gatedLinear = c.swiglu() ? 1.5 : 1.0;
        int normSize = c.normalization() == Normalization.RMS_NORM ? 1 : 2;
        MoeConfig moe = c.moe();
        int moeLayers = 0;
        if (moe != null) {
            for (boolean isMoe : moe.moeLayers(c.numLayers())) {
                moeLayers += isMoe ? 1 : 0;
            }
        }
        int denseLayers = c.numLayers() - moeLayers;
        double experts = moe == null ? 1 : moe.numExperts();
        double moeFfn = moe == null ? 0 : moe.ffnHiddenSize();
        double sharedFfn = moe == null ? 0 : moe.sharedExpertIntermediateSize();

        double attention = 2 * h * h * ((1 + (double) c.numQueryGroups() / c.numAttentionHeads()) * queryToHidden);
        if (c.mla() != null) {   // theoretical_memory_usage.py's MLA branch (its norm terms count LayerNorm's bias too)
            org.megatronj.model.MlaConfig m = c.mla();
            double np = c.numAttentionHeads();
            double qTerm = m.hasQueryLatent() ? m.qLoraRank() * (h + np * m.qHeadDim() + normSize) : h * np * m.qHeadDim();
            attention = qTerm + m.kvLoraRank() * (h + np * (m.qkHeadDim() + m.vHeadDim()) + normSize)
                    + h * m.qkPosEmbHeadDim() + np * m.vHeadDim() * h;
        }
        double denseMlp = 2 * h * c.ffnHiddenSize() * gatedLinear;
        double sharedExperts = 2 * h * sharedFfn * gatedLinear;
        double routedExperts = 2 * h * moeFfn * experts * gatedLinear;
        double activeRoutedExperts = moe == null ? 0 : 2 * h * moeFfn * moe.routerTopk() * gatedLinear;
        double layerNorms = 2 * h * normSize;
        double router = moe == null ? 0 : h * experts + (c.addBiasLinear() ? experts : 0);
        double sharedExpertGate = sharedFfn > 0 && moe.sharedExpertGate() ? h : 0;
        double embedding = h * c.paddedVocabSize(s.tensorParallel());
        double finalNorm = normSize * h;
        double embeddingLayers = c.untieEmbeddingsAndOutputWeights() ? 2 * embedding : embedding;

        double denseLayer = attention + denseMlp + layerNorms;
        double moeLayer = attention + sharedExperts + routedExperts + layerNorms + router + sharedExpertGate;
        double activeMoeLayer = attention + sharedExperts + activeRoutedExperts + layerNorms + router + sharedExpertGate;
        double block = denseLayer * denseLayers + moeLayer * moeLayers + finalNorm;
        double activeBlock = denseLayer * denseLayers + activeMoeLayer * moeLayers + finalNorm;
        // MTP: Megatron counts each depth's transformer layer (the decoder's last layer's kind), not its norms or eh_proj
        int mtpMoeLayers = c.mtpLayersAreMoe() ? c.mtpNumLayers() : 0;
        int mtpDenseLayers = c.mtpNumLayers() - mtpMoeLayers;
        double mtpBlock = denseLayer * mtpDenseLayers + moeLayer * mtpMoeLayers;
        double total = block + mtpBlock + embeddingLayers;
        double activeTotal = activeBlock + mtpBlock + embeddingLayers;
        lines.add("Number of parameters in transformer block in billions: " + spaced(block / 1e9));
        lines.add("Number of active parameters in transformer block in billions: " + spaced(activeBlock / 1e9));
        if (c.mtp() != null) {
            lines.add("Number of parameters in mtp block in billions: " + spaced(mtpBlock / 1e9));
        }
        lines.add("Number of parameters in embedding layers in billions: " + f(embeddingLayers / 1e9, 2));
        lines.add("Total number of parameters in billions: " + f(total / 1e9, 2));
        lines.add("Total number of active parameters in billions: " + f(activeTotal / 1e9, 2));

        // Megatron-J: expert tensor parallelism is the tensor-parallel size, no expert model parallelism
        int tp = s.tensorParallel(), pp = s.pipelineParallel();
        int expertTp = tp, expertMp = 1;
        int worldSize = tp * pp * s.contextParallel() * s.dataParallel();
        int expertDataParallel = worldSize / (expertTp * expertMp * pp);
        double tpShardedInBlock = (attention + denseMlp) * denseLayers + (attention + sharedExperts) * moeLayers;
        double replicatedInBlock = layerNorms * denseLayers + (layerNorms + router + sharedExpertGate) * moeLayers
                + finalNorm;
        double expertShardedInBlock = routedExperts * moeLayers;
        double tpShardedInMtp = (attention + denseMlp) * mtpDenseLayers + (attention + sharedExperts) * mtpMoeLayers;
        double replicatedInMtp = layerNorms * mtpDenseLayers + (layerNorms + router + sharedExpertGate) * mtpMoeLayers;
        double expertShardedInMtp = routedExperts * mtpMoeLayers;
        // the most loaded shard: 1/pp of the decoder, the MTP block and the embedding
        double tpShardedOnMostLoaded = (tpShardedInBlock / pp + tpShardedInMtp + embedding) / tp;
        double replicatedOnMostLoaded = replicatedInBlock / pp + replicatedInMtp;
        double expertShardedOnMostLoaded = (expertShardedInBlock / pp + expertShardedInMtp) / (expertTp * expertMp);
        double onMostLoaded = tpShardedOnMostLoaded + replicatedOnMostLoaded + expertShardedOnMostLoaded;
        if (c.untieEmbeddingsAndOutputWeights() && pp == 1) {
            tpShardedOnMostLoaded += embedding / tp;
            onMostLoaded += embedding / tp;
        }
        lines.add("Number of parameters in most loaded shard in billions: " + f(onMostLoaded / 1e9, 4));
        if (pp > 1) {
            double onOthers = tpShardedInBlock / ((double) pp * tp) + replicatedInBlock / pp
                    + expertShardedInBlock / ((double) pp * expertTp * expertMp);
            lines.add("Number of parameters in other shards in billions: " + f(onOthers / 1e9, 4));
        }
        return (tpShardedOnMostLoaded + replicatedOnMostLoaded) * bytesPerParameter(s, s.dataParallel())
                + expertShardedOnMostLoaded * bytesPerParameter(s, expertDataParallel);
    }

    /** bf16 weight, fp32 main weight, gradient and two Adam moments; the fp32 ones split over DP by the distributed optimizer. */
    private static double bytesPerParameter(Setup s, int dataParallel) {
        return s.distributedOptimizer() ? 6 + 12.0 / dataParallel : 18;
    }

    /** Korthikanti et al.'s count with sequence parallelism and selective recompute, on the first pipeline stage. */
    private static double activationBytesWithSp(TransformerConfig c, Setup s, List<String> lines) {
        double sbh = tokens(c, s) * c.hiddenSize();
        double memory = sbh * (18 + 4 * ((double) c.ffnHiddenSize() / c.hiddenSize()));
        lines.add("Activation memory footprint per transformer layer: " + f(memory / MB / s.tensorParallel(), 1) + " MB");
        memory *= c.numLayers();
        memory = withEmbeddingAndSchedule(memory, c, s, lines);
        if (s.pipelineParallel() == 1) {   // the output layer's input and the cross-entropy
            memory += sbh * 4 * (1 + (double) c.paddedVocabSize(s.tensorParallel()) / c.hiddenSize());
        }
        return memory / s.tensorParallel();
    }

    private static double activationBytesWithoutSp(TransformerConfig c, Setup s, List<String> lines) {
        double sbh = tokens(c, s) * c.hiddenSize();
        double perLayer = sbh * (10 + 24.0 / s.tensorParallel());
        lines.add("Activation memory footprint per transformer layer (precise, without SP): " + f(perLayer / MB, 1) + " MB");
        double memory = withEmbeddingAndSchedule(perLayer * c.numLayers(), c, s, lines);
        if (s.pipelineParallel() == 1) {   // the logits (split by TP) and the final norm's output, 2 bytes each
            double logits = tokens(c, s) * c.paddedVocabSize(s.tensorParallel()) / s.tensorParallel();
            memory += (logits + sbh) * 2;
        }
        return memory * 1.05;              // the optimizer's and other temporaries
    }

    /** Adds the embedding's input and dropout for the micro-batches in flight, and the pipeline schedule's factor. */
    private static double withEmbeddingAndSchedule(double layersMemory, TransformerConfig c, Setup s, List<String> lines) {
        int pp = s.pipelineParallel();
        double memory = layersMemory + 8 * tokens(c, s) * pp + tokens(c, s) * c.hiddenSize() * pp;
        if (s.virtualPipelineParallel() > 0) {
            double penalty = 1 + (pp - 1) / ((double) pp * s.virtualPipelineParallel());
            lines.add("Memory penalty from interleaved schedule: " + f(penalty, 2));
            lines.add("Number of in-flight microbatches: " + (int) Math.ceil(penalty * pp));
            memory *= penalty;
        } else if (pp > 1) {
            memory *= Math.min(1, (double) s.numMicrobatches() / pp);
            lines.add("Number of in-flight microbatches: " + Math.min(s.numMicrobatches(), pp));
        }
        return memory;
    }

    private static double tokens(TransformerConfig c, Setup s) {
        return (double) c.seqLength() * s.microBatchSize();
    }

    private static String f(double v, int digits) {
        return TrainingLog.pythonF(v, digits);
    }

    /** Python's {@code '{: .2f}'}: a space where a minus sign would go. */
    private static String spaced(double v) {
        String s = f(v, 2);
        return s.startsWith("-") ? s : " " + s;
    }
}
