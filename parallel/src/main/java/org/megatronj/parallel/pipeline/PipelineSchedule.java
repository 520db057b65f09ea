package org.megatronj.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.PhaseTimers;

/**
 * Megatron's forward-backward schedules for one rank's model chunks over the micro-batches of an
 * iteration ({@code schedules.py}):
 * <ul>
 *   <li>no pipelining (one stage): forward and backward of each micro-batch in turn;</li>
 *   <li>1F1B (one chunk per stage): {@code P - r - 1} warm-up forwards, then one forward and one
 *       backward alternately, then the remaining backwards, so at most {@code P - r} micro-batches
 *       hold activations;</li>
 *   <li>interleaved 1F1B (V model chunks per stage): virtual micro-batch k runs on chunk
 *       {@code (k / P) mod V} (reversed for backward), {@code 2 (P - r - 1) + (V - 1) P} warm-up
 *       forwards; needs the number of micro-batches divisible by P, as Megatron.</li>
 * </ul>
 * Activations and their gradients travel as {@code [s, b, h]} ({@code [s/t, b, h]} under sequence
 * parallelism) tensors on {@link PipelineChannels}; sends are eager copies, so the blocking
 * receives in schedule order never deadlock. Every micro-batch's loss is scaled by
 * {@code gradScale} in backward (1 / micro-batches, as Megatron).
 */
public final class PipelineSchedule {
    private final List<GPTModel> chunks;
    private final PipelineChannels channels;

    /** @param chunks this rank's model chunks in order (chunk c holds virtual stage {@code c * P + rank}) */
    public PipelineSchedule(List<GPTModel> chunks, PipelineChannels channels) {
        if (chunks.isEmpty()) {
            throw new IllegalArgumentException("a pipeline rank needs at least one model chunk");
        }
        if (chunks.size() > 1 && channels.stages() == 1) {
            throw new IllegalArgumentException("virtual pipeline stages (" + chunks.size()
                    + " model chunks) need --pipeline-model-parallel-size > 1");
        }
        this.chunks = List.copyOf(chunks);
        this.channels = channels;
    }

    /**
     * Runs forward and backward of every micro-batch; gradients accumulate in the chunks.
     * Returns the losses of the micro-batches in order on the last stage, an empty list elsewhere.
     *
     * @param rngOffsets the dropout offset of each micro-batch (same length as {@code batches})
     */
    public List<LossResult> run(List<MicroBatch> batches, long[] rngOffsets, float gradScale) {
        float[] scales = new float[batches.size()];
        java.util.Arrays.fill(scales, gradScale);
        return run(batches, rngOffsets, scales, chunk -> { });
    }

    /**
     * As {@link #run(List, long[], float)} with a gradient scale per micro-batch ({@code --calculate-per-token-loss}
     * weighs them by their tokens), telling {@code beforeLastBackward} the index of each model chunk just before
     * its last backward of the iteration (where the data-parallel reduction of its gradients may start,
     * {@code --overlap-grad-reduce}).
     */
    public List<LossResult> run(List<MicroBatch> batches, long[] rngOffsets, float[] gradScales, IntConsumer beforeLastBackward) {
        if (rngOffsets.length != batches.size() || gradScales.length != batches.size()) {
            throw new IllegalArgumentException(rngOffsets.length + " rng offsets and " + gradScales.length + " gradient scales for "
                    + batches.size() + " micro-batches");
        }
        int stages = channels.stages();
        int v = chunks.size();
        int m = batches.size();
        if (v > 1 && m % stages != 0) {
            throw new IllegalArgumentException("interleaved pipeline schedule: the number of micro-batches " + m
                    + " (global batch / (micro batch x data-parallel size)) must be divisible by "
                    + "--pipeline-model-parallel-size " + stages);
        }
        LossResult[] losses = new LossResult[m];
        int total = m * v;
        int warmup = warmupCount(stages, channels.stage(), v, m);
        int slots = warmup + 1;
        Step step = new Step(batches, rngOffsets, gradScales, losses, slots, beforeLastBackward);
        int remaining = total - warmup;
        for (int k = 0; k < warmup; k++) {
            step.forward(k);
        }
        for (int i = 0; i < remaining; i++) {
            step.forward(warmup + i);
            step.backward(i);
        }
        for (int i = remaining; i < total; i++) {
            step.backward(i);
        }
        List<LossResult> out = new ArrayList<>();
        for (LossResult r : losses) {
            if (r != null) {
                out.add(r);
            }
        }
        return out;
    }

    /**
     * Forward only (evaluation, no dropout, no gradients): every micro-batch through every chunk
     * in order, activations passed on as in training. Returns the losses on the last stage, an
     * empty list elsewhere.
     */
    public List<LossResult> forwardOnly(List<MicroBatch> batches) {
        List<LossResult> out = new ArrayList<>();
        for (MicroBatch batch : batches) {
            for (GPTModel chunk : chunks) {
                // One slot: a stage's forward is finished (and its output copied out) before the next starts.
                if (!chunk.chunk().preProcess()) {
                    channels.forward().recv(chunk.stageInput(0, batch.seqLength(), batch.batchSize()), previous());
                }
                LossResult loss = chunk.forwardStep(0, batch, 0, false);
                if (chunk.chunk().postProcess()) {
                    out.add(loss);
                } else {
                    channels.forward().send(chunk.stageOutput(0), next());
                }
            }
        }
        return out;
    }

    private int next() {
        return (channels.stage() + 1) % channels.stages();
    }

    private int previous() {
        return (channels.stage() - 1 + channels.stages()) % channels.stages();
    }

    /** Forwards run before the first backward on pipeline rank {@code rank} (Megatron's num_warmup_microbatches). */
    static int warmupCount(int stages, int rank, int chunks, int microBatches) {
        int total = microBatches * chunks;
        if (chunks == 1) {
            return Math.min(stages - rank - 1, microBatches);
        }
        if (microBatches == stages) {
            return total;   // Megatron: all warm-up when there are exactly P micro-batches
        }
        return Math.min((stages - rank - 1) * 2 + (chunks - 1) * stages, total);
    }

    /** One iteration's state: which micro-batch and chunk each virtual step touches. */
    private final class Step {
        private final List<MicroBatch> batches;
        private final long[] rngOffsets;
        private final float[] gradScales;
        private final LossResult[] losses;
        private final int slots;
        private final IntConsumer beforeLastBackward;

        Step(List<MicroBatch> batches, long[] rngOffsets, float[] gradScales, LossResult[] losses, int slots,
             IntConsumer beforeLastBackward) {
            this.beforeLastBackward = beforeLastBackward;
            this.batches = batches;
            this.rngOffsets = rngOffsets;
            this.gradScales = gradScales;
            this.losses = losses;
            this.slots = slots;
        }

        private int chunkOf(int k, boolean forward) {
            int stages = channels.stages();
            int v = chunks.size();
            int c = (k % (stages * v)) / stages;
            return forward ? c : v - 1 - c;
        }

        private int microBatchOf(int k) {
            int stages = channels.stages();
            int group = k / (stages * chunks.size());
            return group * stages + k % stages;
        }

        void forward(int k) {
            int c = chunks.size() == 1 ? 0 : chunkOf(k, true);
            int mb = chunks.size() == 1 ? k : microBatchOf(k);
            GPTModel chunk = chunks.get(c);
            MicroBatch batch = batches.get(mb);
            int slot = mb % slots;   // a chunk's micro-batches in flight are consecutive and at most `slots`
            PhaseTimers timers = chunk.phaseTimers();
            if (!chunk.chunk().preProcess()) {
                timers.start("forward-recv");
                channels.forward().recv(chunk.stageInput(slot, batch.seqLength(), batch.batchSize()), previous());
                timers.stop("forward-recv");
            }
            LossResult loss = chunk.forwardStep(slot, batch, rngOffsets[mb], true);
            if (chunk.chunk().postProcess()) {
                losses[mb] = loss;
            } else {
                timers.start("forward-send");
                channels.forward().send(chunk.stageOutput(slot), next());
                timers.stop("forward-send");
            }
        }

        void backward(int k) {
            int c = chunks.size() == 1 ? 0 : chunkOf(k, false);
            int mb = chunks.size() == 1 ? k : microBatchOf(k);
            GPTModel chunk = chunks.get(c);
            int slot = mb % slots;
            PhaseTimers timers = chunk.phaseTimers();
            if (!chunk.chunk().postProcess()) {
                timers.start("backward-recv");
                channels.backward().recv(chunk.stageGrad(slot), next());
                timers.stop("backward-recv");
            }
            if (mb == batches.size() - 1) {
                beforeLastBackward.accept(c);
            }
            chunk.backwardStep(slot, gradScales[mb]);
            if (!chunk.chunk().preProcess()) {
                timers.start("backward-send");
                channels.backward().send(chunk.stageGrad(slot), previous());
                timers.stop("backward-send");
            }
        }
    }
}
