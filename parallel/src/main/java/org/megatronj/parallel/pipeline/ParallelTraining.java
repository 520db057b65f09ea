package org.megatronj.parallel.pipeline;

import java.util.List;
import java.util.Map;
import org.megatronj.memory.Tensor;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;
import org.megatronj.parallel.train.ExitSignal;
import org.megatronj.parallel.train.TrainableModel;
import org.megatronj.parallel.train.TrainingOptimizer;

/**
 * Adapters from a {@link ParallelGptRank} to the trainer's interfaces, so that every rank thread
 * runs the ordinary {@link org.megatronj.parallel.train.Trainer} loop: the model takes each
 * iteration's micro-batches together (its DP share under the pipeline schedule) and reports the
 * global loss; the optimizer synchronises and clips the gradients over the ranks before it steps.
 */
public final class ParallelTraining {
    private ParallelTraining() {
    }

    public static TrainableModel model(ParallelGptRank rank) {
        return new TrainableModel() {
            @Override
            public List<Parameter> parameters() {
                return rank.parameters();
            }

            @Override
            public boolean schedulesMicroBatches() {
                return true;
            }

            @Override
            public LossResult forwardBackwardAll(List<MicroBatch> batches, float gradScale, long[] rngOffsets) {
                // ParallelGptRank scales by 1 / (micro-batches per DP rank) and averages over DP: 1 / batches overall.
                if (Math.abs(gradScale * batches.size() - 1f) > 1e-6f) {
                    throw new IllegalArgumentException("parallel training scales each micro-batch by 1 / micro-batches ("
                            + batches.size() + "), got gradScale " + gradScale);
                }
                return rank.forwardBackward(batches, rngOffsets);
            }

            @Override
            public LossResult forwardLossAll(List<MicroBatch> batches) {
                return rank.evaluate(batches);
            }

            @Override
            public LossResult forwardBackward(MicroBatch batch, float gradScale, long rngOffset) {
                throw new IllegalStateException("a parallel rank runs whole iterations: use forwardBackwardAll");
            }

            @Override
            public LossResult forwardLoss(MicroBatch batch) {
                return rank.evaluate(List.of(batch));
            }

            @Override
            public void zeroGrad() {
                rank.chunks().forEach(m -> m.zeroGrad());
            }
        };
    }

    /**
     * The rank's optimizer ({@code name}: "adam" or "sgd", as checkpoints record it) behind the
     * trainer's interface. With a {@code processSignal} (SIGTERM for the whole process), every
     * iteration's clip also agrees over all ranks whether it arrived, and sets {@code rankSignal}
     * (the one this rank's trainer checks) on all of them alike, so that all stop after the same
     * iteration.
     */
    public static TrainingOptimizer optimizer(ParallelGptRank rank, String name, ExitSignal processSignal,
                                              ExitSignal rankSignal) {
        return new TrainingOptimizer() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public double clipGradNorm(double maxNorm) {
                double norm = rank.clipGradients(maxNorm);
                if (processSignal != null && rank.anyRank(processSignal.received())) {
                    rankSignal.request();
                }
                return norm;
            }

            @Override
            public void step(double lr) {
                rank.optimizer().step((float) lr);
            }

            @Override
            public Map<String, Tensor> stateTensors() {
                return rank.optimizer().stateTensors();
            }

            @Override
            public long stepCount() {
                return rank.optimizer().stepCount();
            }

            @Override
            public void setStepCount(long steps) {
                rank.optimizer().setStepCount(steps);
            }
        };
    }
}
