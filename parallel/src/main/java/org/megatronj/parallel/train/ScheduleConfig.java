package org.megatronj.parallel.train;

import org.megatronj.model.optim.DecayStyle;
import org.megatronj.model.optim.OptimizerParamScheduler;
import org.megatronj.model.optim.WeightDecaySchedule;
import org.megatronj.model.optim.WsdDecay;

/**
 * Training length and learning-rate schedule with Megatron's flags. Exactly one of
 * {@code --train-iters} and {@code --train-samples} is set (the other is 0); iteration-based runs
 * take their decay and warmup in iterations ({@code --lr-decay-iters}, {@code --lr-warmup-iters}),
 * sample-based runs in samples ({@code --lr-decay-samples}, {@code --lr-warmup-samples});
 * {@code --lr-warmup-fraction} (of the decay length) works with both. Unset lengths are 0 and
 * an unset warmup fraction is NaN. {@code --lr-decay-style WSD} decays over its last
 * {@code --lr-wsd-decay-iters} (or {@code -samples}) in {@code --lr-wsd-decay-style}.
 */
public record ScheduleConfig(long trainIters, long trainSamples,
                             double lr, double minLr, DecayStyle decayStyle,
                             long lrDecayIters, long lrDecaySamples,
                             double lrWarmupFraction, long lrWarmupIters, long lrWarmupSamples,
                             WsdDecay.Style lrWsdDecayStyle, long lrWsdDecayIters, long lrWsdDecaySamples,
                             WeightDecayIncrement weightDecayIncrement, DecoupledLr decoupledLr, double lrWarmupInit) {

    /**
     * {@code --decoupled-lr} and {@code --decoupled-min-lr} (NaN: {@code --min-lr}): the learning rate of the word
     * embedding and the output layer, on the same warmup and decay; null without.
     */
    public record DecoupledLr(double lr, double minLr) {
    }

    /**
     * {@code --start-weight-decay}, {@code --end-weight-decay} and {@code --weight-decay-incr-style} linear or cosine
     * (constant, Megatron's default, keeps {@code --weight-decay}: no increment, null).
     */
    public record WeightDecayIncrement(double start, double end, WeightDecaySchedule.Style style) {
    }

    /** Without a WSD decay. */
    public ScheduleConfig(long trainIters, long trainSamples, double lr, double minLr, DecayStyle decayStyle,
                          long lrDecayIters, long lrDecaySamples, double lrWarmupFraction, long lrWarmupIters,
                          long lrWarmupSamples) {
        this(trainIters, trainSamples, lr, minLr, decayStyle, lrDecayIters, lrDecaySamples, lrWarmupFraction, lrWarmupIters,
                lrWarmupSamples, WsdDecay.Style.EXPONENTIAL, 0, 0, null, null, 0);
    }

    public ScheduleConfig {
        if ((trainIters > 0) == (trainSamples > 0)) {
            throw new IllegalArgumentException("give exactly one of --train-iters and --train-samples (got "
                    + trainIters + " and " + trainSamples + ")");
        }
        OptimizerParamScheduler.checkLrRange(lr, minLr);
        if (decayStyle == null) {
            throw new IllegalArgumentException("--lr-decay-style must be set");
        }
        boolean fraction = !Double.isNaN(lrWarmupFraction);
        if (fraction && !(lrWarmupFraction >= 0 && lrWarmupFraction <= 1)) {
            throw new IllegalArgumentException("--lr-warmup-fraction must be in [0, 1], got " + lrWarmupFraction);
        }
        if (trainIters > 0) {
            if (lrDecaySamples > 0 || lrWarmupSamples > 0) {
                throw new IllegalArgumentException("--train-iters counts in iterations: use --lr-decay-iters and"
                        + " --lr-warmup-iters, not --lr-decay-samples or --lr-warmup-samples");
            }
            if (fraction && lrWarmupIters > 0) {
                throw new IllegalArgumentException("can only specify one of --lr-warmup-fraction and --lr-warmup-iters");
            }
        } else {
            if (lrDecayIters > 0 || lrWarmupIters > 0) {
                throw new IllegalArgumentException("--train-samples counts in samples: use --lr-decay-samples and"
                        + " --lr-warmup-samples, not --lr-decay-iters or --lr-warmup-iters");
            }
            if (fraction && lrWarmupSamples > 0) {
                throw new IllegalArgumentException("can only specify one of --lr-warmup-fraction and --lr-warmup-samples");
            }
        }
        if (trainIters > 0 ? lrWsdDecaySamples > 0 : lrWsdDecayIters > 0) {
            throw new IllegalArgumentException(trainIters > 0 ? "--train-iters counts in iterations: use --lr-wsd-decay-iters"
                    : "--train-samples counts in samples: use --lr-wsd-decay-samples");
        }
        if (lrDecayIters < 0 || lrDecaySamples < 0 || lrWarmupIters < 0 || lrWarmupSamples < 0 || lrWsdDecayIters < 0
                || lrWsdDecaySamples < 0) {
            throw new IllegalArgumentException("decay and warmup lengths must be >= 0");
        }
    }

    /** An iteration-based schedule with warmup in iterations and decay over all iterations. */
    public static ScheduleConfig iterations(long trainIters, double lr, double minLr, DecayStyle style, long warmupIters) {
        return new ScheduleConfig(trainIters, 0, lr, minLr, style, 0, 0, Double.NaN, warmupIters, 0);
    }

    /** Iterations to run: {@code --train-iters}, or derived from {@code --train-samples} and the batch sizes. */
    public long totalIterations(BatchConfig batch) {
        return trainIters > 0 ? trainIters : batch.iterationsForSamples(trainSamples);
    }

    /**
     * The scheduler Megatron builds ({@code get_optimizer_param_scheduler}): steps count samples, so
     * iteration lengths are multiplied by the global batch size.
     */
    public OptimizerParamScheduler scheduler(BatchConfig batch) {
        return scheduler(batch, OptimizerParamScheduler.OnLoad.CHECK);
    }

    /** {@link #scheduler(BatchConfig)} that treats a checkpoint's schedule as {@code onLoad} says. */
    public OptimizerParamScheduler scheduler(BatchConfig batch, OptimizerParamScheduler.OnLoad onLoad) {
        double decaySteps;
        double warmupSteps;
        if (trainIters > 0) {
            long decayIters = lrDecayIters > 0 ? lrDecayIters : trainIters;
            decaySteps = (double) decayIters * batch.globalBatchSize();
            warmupSteps = !Double.isNaN(lrWarmupFraction) ? lrWarmupFraction * decaySteps
                    : (double) lrWarmupIters * batch.globalBatchSize();
        } else {
            decaySteps = lrDecaySamples > 0 ? lrDecaySamples : trainSamples;
            warmupSteps = !Double.isNaN(lrWarmupFraction) ? lrWarmupFraction * decaySteps : lrWarmupSamples;
        }
        double wsdSteps = trainIters > 0 ? (double) lrWsdDecayIters * batch.globalBatchSize() : lrWsdDecaySamples;
        WsdDecay wsd = wsdSteps > 0 || decayStyle == DecayStyle.WSD ? new WsdDecay(wsdSteps, lrWsdDecayStyle) : null;
        OptimizerParamScheduler scheduler = new OptimizerParamScheduler(lr, minLr, warmupSteps, decaySteps, decayStyle, wsd,
                onLoad);
        if (weightDecayIncrement != null) {   // over the whole run, as Megatron's wd_incr_steps
            double steps = trainIters > 0 ? (double) trainIters * batch.globalBatchSize() : trainSamples;
            scheduler.withWeightDecay(new WeightDecaySchedule(weightDecayIncrement.start(), weightDecayIncrement.end(), steps,
                    weightDecayIncrement.style()));
        }
        scheduler.withWarmupInit(lrWarmupInit);
        if (decoupledLr != null) {
            scheduler.withDecoupledLr(decoupledLr.lr(), Double.isNaN(decoupledLr.minLr()) ? minLr : decoupledLr.minLr());
        }
        return scheduler;
    }
}
