package org.megatronj.parallel.pipeline;

import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;
import org.megatronj.memory.Tensor;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;
import org.megatronj.model.PhaseTimers;
import org.megatronj.model.optim.LossScaler;
import org.megatronj.parallel.optim.ParallelGradients;
import org.megatronj.parallel.train.ExitSignal;
import org.megatronj.parallel.train.TrainableModel;
import org.megatronj.parallel.train.TrainingOptimizer;

/**
 * Adapters from a {@link ParallelGptRank} to the trainer's interfaces, so that every rank thread
 * runs the ordinary {@link org.megatronj.parallel.train.Trainer} loop: the model takes each
 * iteration's micro-batches together (its DP share under the pipeline schedule), synchronises the
 * gradients over the ranks and reports the global loss; the optimizer unscales and checks them
 * (mixed precision), clips them by the global norm and steps.
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
            public LossResult forwardBackwardAll(List<MicroBatch> batches, float[] gradScales, long[] rngOffsets) {
                // the gradients come back synchronised over the ranks
                return rank.forwardBackward(batches, rngOffsets, gradScales);
            }

            @Override
            public void refreshComputeWeights() {
                rank.refreshComputeWeights();
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

            @Override
            public void setPhaseTimers(IntFunction<PhaseTimers> atLevel) {
                rank.chunks().forEach(m -> m.setPhaseTimers(atLevel.apply(2)));   // the schedule times its sends and receives with them too
                rank.setGradientSyncTimers(atLevel.apply(1));
            }

            @Override
            public double[] maxOverRanks(double[] values) {
                return ParallelGradients.allReduceMax(rank.context().groups().world(), values);
            }

            @Override
            public List<String> parametersDifferingAcrossDataParallel() {
                return rank.parametersDifferingAcrossDataParallel();
            }

            @Override
            public void setMoeAuxLossScale(float scale) {
                rank.setMoeAuxLossScale(scale);
            }

            @Override
            public org.megatronj.model.MoeMetrics.Report takeMoeMetrics(int microBatches) {
                return rank.moeMetrics(microBatches);
            }

            @Override
            public double[][] gatherOverRanks(double[] values) {
                return ParallelGradients.allGather(rank.context().groups().world(), values);
            }
        };
    }

    /** {@link #optimizer(ParallelGptRank, String, ExitSignal, ExitSignal, LossScaler)} without loss scaling. */
    public static TrainingOptimizer optimizer(ParallelGptRank rank, String name, ExitSignal processSignal,
                                              ExitSignal rankSignal) {
        return optimizer(rank, name, processSignal, rankSignal, null);
    }

    /**
     * The rank's optimizer ({@code name}: "adam" or "sgd", as checkpoints record it) behind the
     * trainer's interface, with {@code scaler} (this rank's own instance, or null) for mixed
     * precision: every rank sees the same inf/NaN outcome, so all scalers stay equal. With a
     * {@code processSignal} (SIGTERM for the whole process), every iteration also agrees over all
     * ranks whether it arrived (in the inf check with a scaler, else in the clip), and sets
     * {@code rankSignal} (the one this rank's trainer checks) on all of them alike, so that all
     * stop after the same iteration.
     */
    public static TrainingOptimizer optimizer(ParallelGptRank rank, String name, ExitSignal processSignal,
                                              ExitSignal rankSignal, LossScaler scaler) {
        return new TrainingOptimizer() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public LossScaler lossScaler() {
                return scaler;
            }

            @Override
            public boolean unscaleAndCheckForInfOrNan(float inverseScale) {
                boolean found = rank.unscaleAndCheckForInfOrNan(inverseScale);
                agreeOnSignal();
                return found;
            }

            @Override
            public double clipGradNorm(double maxNorm) {
                double norm = rank.clipGradients(maxNorm);
                if (scaler == null) {
                    agreeOnSignal();
                }
                return norm;
            }

            private void agreeOnSignal() {
                if (processSignal != null && rank.anyRank(processSignal.received())) {
                    rankSignal.request();
                }
            }

            @Override
            public void step(double lr) {
                rank.step((float) lr);
            }

            @Override
            public double paramsNorm() {
                return rank.paramsNorm();
            }

            @Override
            public void setWeightDecay(double weightDecay) {
                rank.optimizer().setWeightDecay((float) weightDecay);
            }

            @Override
            public void setDecoupledLr(double lr) {
                rank.optimizer().setDecoupledLr((float) lr);
            }

            @Override
            public long zerosInGradients() {
                return rank.zerosInGradients();
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
