package org.megatronj.cli;

import picocli.CommandLine.Option;

/**
 * Megatron's flags that choose among implementations of the same computation: kernel fusions, the
 * attention backend, the transformer implementation, data-loading workers, memory-cache emptying,
 * Python's garbage collector, the process-group timeout. Megatron-J has one implementation of each
 * (its fused kernels and FlashAttention-algorithm attention, mmap-ed datasets read on the training
 * thread, ranks as threads of one JVM), computing the same values; so Megatron's scripts run
 * unchanged: the flags are checked as Megatron checks them, recorded in the arguments block and the
 * checkpoint, and change nothing else. Flags that change the numbers are implemented where they live
 * (e.g. {@code --no-bias-gelu-fusion} in {@link ModelOptions}).
 */
public final class ImplementationChoiceOptions {
    @Option(names = "--attention-backend", paramLabel = "B", defaultValue = "auto",
            description = "flash, fused, unfused, local or auto (default ${DEFAULT-VALUE}): every choice runs Megatron-J's"
                    + " FlashAttention-algorithm kernels (same values).")
    String attentionBackend;

    @Option(names = "--transformer-impl", paramLabel = "IMPL", defaultValue = "transformer_engine",
            description = "local, transformer_engine or inference_optimized (default ${DEFAULT-VALUE}): one implementation"
                    + " here. Unlike Transformer Engine's causal attention, it applies --reset-attention-mask's masks.")
    String transformerImpl;

    @Option(names = "--use-mcore-models", description = "Deprecated in Megatron and ignored there too.")
    boolean useMcoreModels;

    @Option(names = "--no-masked-softmax-fusion", description = "Accepted: attention's softmax is always fused here.")
    boolean noMaskedSoftmaxFusion;

    @Option(names = "--no-bias-dropout-fusion", description = "Accepted: bias, dropout and residual add are fused here.")
    boolean noBiasDropoutFusion;

    @Option(names = "--no-bias-swiglu-fusion", description = "Accepted: one swiglu kernel here.")
    boolean noBiasSwigluFusion;

    @Option(names = "--no-rope-fusion", description = "Accepted: one rope kernel here.")
    boolean noRopeFusion;

    @Option(names = "--no-persist-layer-norm", description = "Accepted: one layer-norm kernel here.")
    boolean noPersistLayerNorm;

    @Option(names = "--no-gradient-accumulation-fusion",
            description = "Accepted: weight gradients always accumulate in the GEMM (fp32 main grads).")
    boolean noGradientAccumulationFusion;

    @Option(names = "--cross-entropy-loss-fusion", description = "Accepted: the vocab-parallel cross-entropy is fused here.")
    boolean crossEntropyLossFusion;

    @Option(names = "--cross-entropy-fusion-impl", paramLabel = "IMPL", defaultValue = "native",
            description = "native or te (default ${DEFAULT-VALUE}); one implementation here.")
    String crossEntropyFusionImpl;

    @Option(names = "--overlap-param-gather", description = "Accepted: the distributed optimizer's parameter all-gather"
            + " runs inside its step here.")
    boolean overlapParamGather;

    @Option(names = "--num-workers", paramLabel = "N", defaultValue = "2", description = "Dataloader workers (default"
            + " ${DEFAULT-VALUE}): samples are read from the mmap-ed dataset on the training thread here.")
    int numWorkers;

    @Option(names = "--no-mmap-bin-files", description = "Accepted: .bin files are always mmap-ed (zero-copy) here.")
    boolean noMmapBinFiles;

    @Option(names = "--manual-gc", description = "Python's garbage collector; the JVM's collects on its own.")
    boolean manualGc;

    @Option(names = "--manual-gc-interval", paramLabel = "N", defaultValue = "0", description = "With --manual-gc (ignored"
            + " here). Default: ${DEFAULT-VALUE}.")
    int manualGcInterval;

    @Option(names = "--no-manual-gc-eval", description = "With --manual-gc (ignored here).")
    boolean noManualGcEval;

    @Option(names = "--empty-unused-memory-level", paramLabel = "L", defaultValue = "0",
            description = "0, 1 or 2 (default ${DEFAULT-VALUE}): torch's CUDA cache emptying; the CUDA backend's caching"
                    + " allocator keeps its pool.")
    int emptyUnusedMemoryLevel;

    @Option(names = "--distributed-timeout-minutes", paramLabel = "M", defaultValue = "10",
            description = "The process-group timeout (default ${DEFAULT-VALUE}); ranks are threads of one process here, and"
                    + " a failing rank fails the run at once.")
    int distributedTimeoutMinutes;

    @Option(names = "--attention-softmax-in-fp32", description = "Accepted: attention's softmax always runs in fp32 here.")
    boolean attentionSoftmaxInFp32;

    @Option(names = "--no-async-tensor-model-parallel-allreduce", description = "Deprecated in Megatron; accepted.")
    boolean noAsyncTensorModelParallelAllreduce;

    @Option(names = "--distributed-backend", paramLabel = "B", defaultValue = "nccl", description = "nccl or gloo (default"
            + " ${DEFAULT-VALUE}): ranks exchange through shared memory on the CPU and NCCL on GPUs here.")
    String distributedBackend;

    @Option(names = "--use-cpu-initialization", description = "Accepted: weights are initialised to the same values on"
            + " every device here.")
    boolean useCpuInitialization;

    @Option(names = "--num-dataset-builder-threads", paramLabel = "N", defaultValue = "1", description = "Threads that"
            + " build the dataset indices (default ${DEFAULT-VALUE}); one here, with the same indices.")
    int numDatasetBuilderThreads;

    @Option(names = "--dataloader-type", paramLabel = "TYPE", defaultValue = "single", description = "single (default):"
            + " Megatron's sampler, which reads the samples in order, as here. cyclic and external are refused.")
    String dataloaderType;

    @Option(names = "--trust-remote-code", description = "Accepted: tokenizers are read from their files, no code runs.")
    boolean trustRemoteCode;

    @Option(names = "--ckpt-fully-parallel-load", description = "Accepted: every rank reads its own checkpoint files here.")
    boolean ckptFullyParallelLoad;

    @Option(names = "--no-ckpt-fully-parallel-save", description = "Accepted: every rank writes its own checkpoint files"
            + " here, as Megatron's default fully parallel save.")
    boolean noCkptFullyParallelSave;

    @Option(names = "--ckpt-fully-parallel-save", description = "Deprecated in Megatron (no effect there either); accepted.")
    boolean ckptFullyParallelSave;

    @Option(names = "--ckpt-assume-constant-structure", description = "Accepted: a save-plan cache of Megatron's distributed"
            + " checkpoints; Megatron-J's saves plan nothing to cache.")
    boolean ckptAssumeConstantStructure;

    @Option(names = "--dist-ckpt-optim-fully-reshardable", description = "Accepted: Megatron-J's checkpoints, optimizer"
            + " state included, load into any tensor, pipeline and data-parallel layout anyway.")
    boolean distCkptOptimFullyReshardable;

    @Option(names = "--auto-detect-ckpt-format", description = "Accepted: a load always tells Megatron-J's checkpoints from"
            + " Megatron-LM's (which it names, pointing to import-torch).")
    boolean autoDetectCkptFormat;

    @Option(names = "--async-ckpt-cpu-priority", paramLabel = "N", description = "Accepted: the nice value of Megatron's"
            + " checkpoint writer process; Megatron-J's writer is a thread of the run.")
    Integer asyncCkptCpuPriority;

    @Option(names = "--cuda-graph-impl", paramLabel = "IMPL", defaultValue = "none", description = "none, local or"
            + " transformer_engine: accepted; Megatron-J launches its kernels without CUDA graph capture (default"
            + " ${DEFAULT-VALUE}).")
    String cudaGraphImpl;

    @Option(names = "--logging-level", paramLabel = "LEVEL", description = "Accepted: the level of Megatron's Python"
            + " loggers; Megatron-J's log lines are the ones Megatron prints, which no level filters.")
    Integer loggingLevel;

    @Option(names = "--rerun-mode", paramLabel = "MODE", defaultValue = "validate_results", description = "Megatron's"
            + " result validation: disabled or validate_results (default): a NaN or Inf loss stops the run (with"
            + " --check-for-nan-in-loss-and-grad, on by default); the CPU repeats its results bit for bit, so Megatron's"
            + " rerun of the step would only repeat it. report_stats (variability statistics) is refused.")
    String rerunMode;

    @Option(names = "--deterministic-mode", description = "Bit-identical results run after run: the CPU backend always is"
            + " (fixed reduction orders); refused with --device cuda, whose kernels still sum with atomics.")
    boolean deterministicMode;

    @Option(names = "--te-rng-tracker", description = "Accepted: Transformer Engine's RNG tracker; the dropout masks here"
            + " come from the counter-based Philox generator whatever tracker is named.")
    boolean teRngTracker;

    @Option(names = "--disable-gloo-process-groups", description = "Accepted: no Gloo groups are made here (the ranks are"
            + " threads of one JVM).")
    boolean disableGlooProcessGroups;

    @Option(names = "--tp-comm-overlap", description = "Accepted: Transformer Engine's overlap of tensor-parallel"
            + " communication with the GEMMs (the same values); as in Megatron it needs --sequence-parallel with"
            + " --tensor-model-parallel-size > 1.")
    boolean tpCommOverlap;

    @Option(names = "--defer-embedding-wgrad-compute", description = "Accepted: the last stage's embedding weight gradient"
            + " computed at the pipeline flush in Megatron (the same values); needs pipeline parallelism and gradient"
            + " accumulation fusion, as there.")
    boolean deferEmbeddingWgradCompute;

    @Option(names = "--wgrad-deferral-limit", paramLabel = "N", defaultValue = "0", description = "Micro-batches whose"
            + " embedding weight gradient Megatron defers (default ${DEFAULT-VALUE}: all); accepted, >= 0.")
    int wgradDeferralLimit;

    @Option(names = "--overlap-p2p-communication-warmup-flush", description = "Accepted: pipeline sends and receives of"
            + " the warmup and flush overlapped with compute in Megatron (the same values).")
    boolean overlapP2pCommunicationWarmupFlush;

    @Option(names = "--microbatch-group-size-per-virtual-pipeline-stage", paramLabel = "N", description = "Megatron's"
            + " micro-batches per group of the interleaved schedule (default the pipeline size); accepted, >= 1: the"
            + " schedule here groups pipeline-size micro-batches, which changes the order of work, not the values.")
    Integer microbatchGroupSizePerVirtualPipelineStage;

    /**
     * Megatron's choices and ranges, checked before anything is built on {@code device}; {@code sequenceParallel}
     * (active: with TP > 1) and {@code pipelineStages} for the flags that depend on the layout.
     */
    void validate(String device, boolean sequenceParallel, int pipelineStages) {
        if (tpCommOverlap && !sequenceParallel) {
            throw new IllegalArgumentException("Tensor parallel communication/GEMM overlap can happen only when sequence"
                    + " parallelism is enabled (--tp-comm-overlap needs --sequence-parallel with --tensor-model-parallel-size > 1)");
        }
        if (deferEmbeddingWgradCompute && pipelineStages == 1) {
            throw new IllegalArgumentException("Cannot defer embedding wgrad compute when pipeline model parallel is not used"
                    + " (--defer-embedding-wgrad-compute)");
        }
        if (deferEmbeddingWgradCompute && noGradientAccumulationFusion) {
            throw new IllegalArgumentException("Cannot defer embedding wgrad compute when gradient accumulation fusion is not"
                    + " used (--defer-embedding-wgrad-compute with --no-gradient-accumulation-fusion)");
        }
        if (deferEmbeddingWgradCompute && wgradDeferralLimit < 0) {
            throw new IllegalArgumentException("Wgrad deferral limit should be greater than or equal to 0 when it is enabled!"
                    + " (--wgrad-deferral-limit " + wgradDeferralLimit + ")");
        }
        if (microbatchGroupSizePerVirtualPipelineStage != null && microbatchGroupSizePerVirtualPipelineStage < 1) {
            throw new IllegalArgumentException("--microbatch-group-size-per-virtual-pipeline-stage must be >= 1, got "
                    + microbatchGroupSizePerVirtualPipelineStage);
        }
        validate(device);
    }

    /** Megatron's choices and ranges, checked before anything is built on {@code device}. */
    private void validate(String device) {
        if (deterministicMode && !device.equals("cpu")) {
            throw new IllegalArgumentException("--deterministic-mode needs --device cpu: on " + device + " the embedding's and"
                    + " the biases' gradients, the gradient norm and the CUDA-core attention backward add with atomics, in no"
                    + " fixed order");
        }
        oneOf("--attention-backend", attentionBackend, "flash", "fused", "unfused", "local", "auto");
        oneOf("--transformer-impl", transformerImpl, "local", "transformer_engine", "inference_optimized");
        oneOf("--cross-entropy-fusion-impl", crossEntropyFusionImpl, "native", "te");
        oneOf("--distributed-backend", distributedBackend, "nccl", "gloo");
        oneOf("--cuda-graph-impl", cudaGraphImpl, "none", "local", "transformer_engine");
        oneOf("--rerun-mode", rerunMode, "disabled", "validate_results", "report_stats");
        if (rerunMode.equals("report_stats")) {
            throw new IllegalArgumentException("--rerun-mode report_stats reruns every iteration to measure the variability of"
                    + " its results, which Megatron-J does not do; use disabled or validate_results");
        }
        if (!dataloaderType.equals("single")) {
            oneOf("--dataloader-type", dataloaderType, "single", "cyclic", "external");
            throw new IllegalArgumentException("--dataloader-type " + dataloaderType + " draws the samples in another order"
                    + " (cyclic: shuffled each epoch; external: your own loader), which Megatron-J does not; leave it at"
                    + " single, Megatron's default");
        }
        if (numDatasetBuilderThreads < 1) {
            throw new IllegalArgumentException("--num-dataset-builder-threads must be >= 1, got " + numDatasetBuilderThreads);
        }
        if (emptyUnusedMemoryLevel < 0 || emptyUnusedMemoryLevel > 2) {
            throw new IllegalArgumentException("--empty-unused-memory-level must be 0, 1 or 2, got " + emptyUnusedMemoryLevel);
        }
        if (numWorkers < 0) {
            throw new IllegalArgumentException("--num-workers must be >= 0, got " + numWorkers);
        }
        if (distributedTimeoutMinutes < 1) {
            throw new IllegalArgumentException("--distributed-timeout-minutes must be >= 1, got " + distributedTimeoutMinutes);
        }
    }

    private static void oneOf(String flag, String value, String... choices) {
        for (String c : choices) {
            if (c.equals(value)) {
                return;
            }
        }
        throw new IllegalArgumentException(flag + " '" + value + "': expected one of " + String.join(", ", choices));
    }
}
