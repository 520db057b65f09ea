package org.megatronj.model.optim;

import java.util.ArrayList;
import java.util.List;

/**
 * Megatron's {@code OptimizerParamScheduler} for the learning rate: linear warmup from 0 to
 * {@code maxLr} over {@code warmupSteps}, then constant, linear, cosine or inverse-square-root
 * decay to {@code minLr} at {@code decaySteps} (counted from 0, warmup included), then
 * {@code minLr}. The trainer counts steps in samples (each iteration adds its global batch
 * size), so ramp-up and sample-based runs share one clock.
 *
 * <p>As in Megatron the learning rate of an optimizer step is the one computed after the
 * previous step: the first step of a warmup runs at lr 0.
 */
public final class OptimizerParamScheduler {
    /**
     * What a checkpoint's schedule does on load (Megatron's {@code load_state_dict}): its values must equal the
     * run's ({@code CHECK}), or the run's win ({@code --override-opt_param-scheduler}), or the checkpoint's
     * replace them ({@code --use-checkpoint-opt_param-scheduler}). The clock always comes from the checkpoint.
     */
    public enum OnLoad { CHECK, OVERRIDE, USE_CHECKPOINT }

    /** A schedule as a checkpoint holds it; {@code weightDecay} null without a weight-decay increment. */
    public record State(double maxLr, double minLr, double warmupSteps, double decaySteps, DecayStyle style, long numSteps,
                        WeightDecaySchedule weightDecay) {
        public State(double maxLr, double minLr, double warmupSteps, double decaySteps, DecayStyle style, long numSteps) {
            this(maxLr, minLr, warmupSteps, decaySteps, style, numSteps, null);
        }
    }

    private double maxLr;
    private double minLr;
    private double warmupSteps;
    private double decaySteps;
    private DecayStyle style;
    private final WsdDecay wsd;   // with DecayStyle.WSD, else null
    private WeightDecaySchedule weightDecay;   // --weight-decay-incr-style linear or cosine, else null
    private double initLr;   // --lr-warmup-init: where the warmup starts
    private double decoupledMaxLr = Double.NaN;   // --decoupled-lr, else NaN
    private double decoupledMinLr = Double.NaN;
    private final OnLoad onLoad;
    private long numSteps;

    public OptimizerParamScheduler(double maxLr, double minLr, double warmupSteps, double decaySteps, DecayStyle style) {
        this(maxLr, minLr, warmupSteps, decaySteps, style, OnLoad.CHECK);
    }

    public OptimizerParamScheduler(double maxLr, double minLr, double warmupSteps, double decaySteps, DecayStyle style,
                                   OnLoad onLoad) {
        this(maxLr, minLr, warmupSteps, decaySteps, style, null, onLoad);
    }

    /** {@code wsd}: the decay of a {@link DecayStyle#WSD} schedule (required then, else null). */
    public OptimizerParamScheduler(double maxLr, double minLr, double warmupSteps, double decaySteps, DecayStyle style,
                                   WsdDecay wsd, OnLoad onLoad) {
        checkLrRange(maxLr, minLr);
        if ((style == DecayStyle.WSD) != (wsd != null)) {
            throw new IllegalArgumentException(style == DecayStyle.WSD
                    ? "--lr-decay-style WSD needs --lr-wsd-decay-iters or --lr-wsd-decay-samples"
                    : "--lr-wsd-decay-iters/--lr-wsd-decay-samples need --lr-decay-style WSD");
        }
        this.wsd = wsd;
        if (!(decaySteps > 0)) {
            throw new IllegalArgumentException("lr decay length must be positive, got " + decaySteps + " steps");
        }
        if (!(warmupSteps >= 0) || warmupSteps > decaySteps && style != DecayStyle.CONSTANT) {
            throw new IllegalArgumentException("lr warmup (" + warmupSteps + " steps) must lie within the decay ("
                    + decaySteps + " steps)");
        }
        this.maxLr = maxLr;
        this.minLr = minLr;
        this.warmupSteps = warmupSteps;
        this.decaySteps = decaySteps;
        this.style = style;
        this.onLoad = onLoad;
    }

    /** Megatron's {@code 0 <= min_lr <= max_lr}, worded with the flags that set them. */
    public static void checkLrRange(double lr, double minLr) {
        if (!(lr >= 0) || !(minLr >= 0) || minLr > lr) {
            throw new IllegalArgumentException("need 0 <= --min-lr <= --lr, got --lr " + lr + " and --min-lr " + minLr);
        }
    }

    /** {@code --lr-warmup-init}: the warmup rises from {@code lr} (Megatron's {@code init_lr}) instead of 0. */
    public OptimizerParamScheduler withWarmupInit(double lr) {
        if (!(lr >= 0)) {
            throw new IllegalArgumentException("--lr-warmup-init must be >= 0, got " + lr);
        }
        this.initLr = lr;
        return this;
    }

    /**
     * With {@code --decoupled-lr}: the word embedding's and output layer's schedule, this one's warmup and decay from
     * {@code maxLr} to {@code minLr} (Megatron's param group with its own {@code max_lr} and {@code min_lr}).
     */
    public OptimizerParamScheduler withDecoupledLr(double maxLr, double minLr) {
        checkLrRange(maxLr, minLr);
        this.decoupledMaxLr = maxLr;
        this.decoupledMinLr = minLr;
        return this;
    }

    public boolean hasDecoupledLr() {
        return !Double.isNaN(decoupledMaxLr);
    }

    /** The decoupled learning rate for the next optimizer step (only with {@link #withDecoupledLr}). */
    public double currentDecoupledLr() {
        return lrAt(numSteps, decoupledMaxLr, decoupledMinLr);
    }

    /** The learning rate at {@code step} (Megatron's {@code get_lr}). */
    public double lrAt(long step) {
        return lrAt(step, maxLr, minLr);
    }

    /** Megatron's {@code get_lr} of a param group with its {@code max_lr} and {@code min_lr}. */
    private double lrAt(long step, double maxLr, double minLr) {
        if (warmupSteps > 0 && step <= warmupSteps) {
            return initLr + (maxLr - initLr) * step / warmupSteps;
        }
        if (style == DecayStyle.CONSTANT) {
            return maxLr;
        }
        if (step > decaySteps) {
            return minLr;
        }
        if (style == DecayStyle.INVERSE_SQUARE_ROOT) {
            double warmup = Math.max(warmupSteps, 1);
            double n = Math.max(step, 1);
            return Math.max(minLr, maxLr * Math.sqrt(warmup) / Math.sqrt(n));
        }
        double decayRatio = (step - warmupSteps) / (decaySteps - warmupSteps);
        double coefficient = switch (style) {
            case LINEAR -> 1.0 - decayRatio;
            case COSINE -> 0.5 * (Math.cos(Math.PI * decayRatio) + 1.0);
            case WSD -> {
                double annealStart = decaySteps - wsd.steps();
                yield step <= annealStart ? 1.0 : wsd.coefficient((step - annealStart) / wsd.steps());
            }
            default -> throw new IllegalStateException("unhandled decay style " + style);
        };
        return minLr + coefficient * (maxLr - minLr);
    }

    /** With {@code --weight-decay-incr-style linear|cosine}: the schedule of the weight decay (null: a constant one). */
    public OptimizerParamScheduler withWeightDecay(WeightDecaySchedule schedule) {
        this.weightDecay = schedule;
        return this;
    }

    public WeightDecaySchedule weightDecaySchedule() {
        return weightDecay;
    }

    /** The weight decay for the next optimizer step (the schedule's; only with one). */
    public double currentWeightDecay() {
        return weightDecay.at(numSteps);
    }

    /** The learning rate for the next optimizer step. */
    public double currentLr() {
        return lrAt(numSteps);
    }

    /** Advances the clock by {@code increment} steps (for the trainer: the iteration's global batch size). */
    public void step(long increment) {
        numSteps += increment;
    }

    public long numSteps() {
        return numSteps;
    }

    /**
     * Restores a checkpoint's schedule under this scheduler's {@link OnLoad} rule; with {@code CHECK}, a value
     * that differs from this run's is an error naming every difference and the two flags that resolve it.
     */
    public void loadState(State saved) {
        if (onLoad == OnLoad.CHECK) {
            List<String> diffs = new ArrayList<>();
            differs(diffs, "learning rate (--lr)", saved.maxLr(), maxLr);
            differs(diffs, "minimum learning rate (--min-lr)", saved.minLr(), minLr);
            differs(diffs, "warmup steps", saved.warmupSteps(), warmupSteps);
            differs(diffs, "decay steps", saved.decaySteps(), decaySteps);
            if (saved.style() != style) {
                diffs.add("decay style " + saved.style().flagValue() + " (this run: " + style.flagValue() + ")");
            }
            if (!java.util.Objects.equals(saved.weightDecay(), weightDecay)) {
                diffs.add("weight decay increment " + describe(saved.weightDecay()) + " (this run: " + describe(weightDecay) + ")");
            }
            if (!diffs.isEmpty()) {
                throw new IllegalArgumentException("the checkpoint's learning-rate schedule differs from this run's: "
                        + String.join(", ", diffs) + " (steps count samples); pass --override-opt_param-scheduler to use"
                        + " this run's values or --use-checkpoint-opt_param-scheduler to use the checkpoint's");
            }
        } else if (onLoad == OnLoad.USE_CHECKPOINT) {
            if (saved.style() == DecayStyle.WSD && wsd == null) {   // checkpoints keep Megatron's fields, not the WSD decay
                throw new IllegalArgumentException("the checkpoint's learning-rate schedule is WSD: give its"
                        + " --lr-wsd-decay-iters (or -samples) and --lr-wsd-decay-style too");
            }
            maxLr = saved.maxLr();
            minLr = saved.minLr();
            warmupSteps = saved.warmupSteps();
            decaySteps = saved.decaySteps();
            style = saved.style();
            weightDecay = saved.weightDecay();
        }
        numSteps = saved.numSteps();
    }

    private static String describe(WeightDecaySchedule wd) {
        return wd == null ? "none" : wd.style().flagValue() + " " + wd.start() + " to " + wd.end() + " over " + wd.steps();
    }

    private static void differs(List<String> diffs, String what, double saved, double run) {
        if (saved != run) {
            diffs.add(what + " " + saved + " (this run: " + run + ")");
        }
    }

    public double maxLr() {
        return maxLr;
    }

    public double minLr() {
        return minLr;
    }

    public double warmupSteps() {
        return warmupSteps;
    }

    public double decaySteps() {
        return decaySteps;
    }

    public DecayStyle style() {
        return style;
    }
}
