package org.megatronj.cli;

import java.util.List;
import java.util.function.Consumer;

import org.megatronj.memory.Backend;
import org.megatronj.model.ActivationRecompute;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.ParallelConfig;
import org.megatronj.parallel.train.MemoryReport;
import org.megatronj.parallel.train.TheoreticalMemory;
import org.megatronj.parallel.train.TrainingConfig;

/** Megatron's memory report for a run's ranks, from the run's flags. */
final class MemoryReports {
    private MemoryReports() {
    }

    /** The theoretical footprint's lines for this model and layout, at the run's first global batch size. */
    static List<String> theoretical(TransformerConfig model, TrainingConfig training, ParallelConfig layout, ParallelOptions parallel,
                                    ActivationRecompute recompute) {
        int dp = parallel.dataParallelSize();
        int micro = training.batch().microBatchSize();
        int microbatches = training.batch().globalBatchSizeAt(0) / (micro * dp);
        var setup = new TheoreticalMemory.Setup(layout.tensorModelParallelSize(), layout.pipelineModelParallelSize(),
                layout.interleaved() ? layout.virtualPipelineModelParallelSize(model.numLayers()) : 0, dp,
                parallel.useDistributedOptimizer, layout.sequenceParallelActive(),
                recompute.granularity() == ActivationRecompute.Granularity.SELECTIVE, micro, microbatches,
                layout.contextParallelSize());
        return TheoreticalMemory.report(model, setup).lines();
    }

    /**
     * The report of the rank {@code rank} computing on {@code backend}: {@code printer} null on ranks that are not their
     * data-parallel group's first, the theoretical lines on rank 0 only.
     */
    static MemoryReport forRank(Backend backend, int rank, Consumer<String> printer, List<String> theoretical,
                                int logMemoryInterval) {
        return new MemoryReport(backend::memoryStats, rank, printer, rank == 0 ? theoretical : List.of(), logMemoryInterval);
    }
}
