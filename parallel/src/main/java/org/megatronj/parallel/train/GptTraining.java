package org.megatronj.parallel.train;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;
import org.megatronj.model.PhaseTimers;
import org.megatronj.model.optim.AdamW;
import org.megatronj.model.optim.GradClipping;
import org.megatronj.model.optim.LossScaler;
import org.megatronj.model.optim.Optimizer;
import org.megatronj.model.optim.Sgd;

import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;

/** Adapters from the model module's {@link GPTModel} and optimizers to the trainer's interfaces. */
public final class GptTraining {
    private GptTraining() {
    }

    /** The GPT model as the trainer drives it. */
    public static TrainableModel model(GPTModel model) {
        return new TrainableModel() {
            @Override
            public List<Parameter> parameters() {
                return model.parameters();
            }

            @Override
            public LossResult forwardBackward(MicroBatch batch, float gradScale, long rngOffset) {
                return model.forwardBackward(batch, gradScale, rngOffset);
            }

            @Override
            public LossResult forwardLoss(MicroBatch batch) {
                return model.forwardLoss(batch);
            }

            @Override
            public void refreshComputeWeights() {
                model.refreshComputeWeights();
            }

            @Override
            public void zeroGrad() {
                model.zeroGrad();
            }

            @Override
            public void setPhaseTimers(IntFunction<PhaseTimers> atLevel) {
                model.setPhaseTimers(atLevel.apply(2));
            }

            @Override
            public void setMoeAuxLossScale(float scale) {
                model.setMoeAuxLossScale(scale);
            }

            @Override
            public void updateMoeExpertBias() {
                model.updateMoeExpertBias();
            }

            private final org.megatronj.model.MtpMetrics.Acceptance acceptance = new org.megatronj.model.MtpMetrics.Acceptance();

            @Override
            public org.megatronj.model.MoeMetrics.Report takeMoeMetrics(int microBatches) {
                org.megatronj.model.MoeMetrics.Report moe = org.megatronj.model.MoeMetrics.report(
                        org.megatronj.model.MoeMetrics.take(List.of(model)), model.config(), microBatches);
                org.megatronj.model.MoeMetrics.Report withMtp = org.megatronj.model.MtpMetrics.withLosses(moe,
                        org.megatronj.model.MtpMetrics.take(List.of(model)), microBatches);
                return acceptance.addTo(withMtp, org.megatronj.model.MtpMetrics.takeAcceptanceCounts(List.of(model)));
            }
        };
    }

    /** AdamW or SGD (with {@code --clip-grad}) over the model's parameters as {@code config} says, without loss scaling. */
    public static ModelOptimizer optimizer(OptimizerConfig config, GPTModel model) {
        return optimizer(config, model, null);
    }

    /**
     * AdamW or SGD over the model's F32 main parameters as {@code config} says, with
     * {@code scaler} (null: none) for mixed precision; each step ends by refreshing the model's
     * compute weights.
     */
    public static ModelOptimizer optimizer(OptimizerConfig config, GPTModel model, LossScaler scaler) {
        List<Parameter> parameters = model.parameters();
        Backend backend = model.backend();
        Optimizer inner = switch (config.type()) {
            case ADAM -> new AdamW(parameters, backend, (float) config.adamBeta1(), (float) config.adamBeta2(),
                    (float) config.adamEps(), (float) config.weightDecay());
            case SGD -> new Sgd(parameters, backend, (float) config.sgdMomentum(), (float) config.weightDecay());
        };
        return new ModelOptimizer(config.type().flagValue(), inner, model, scaler);
    }

    /**
     * A model/optim optimizer with Megatron's mixed-precision steps around it: unscale and inf
     * check of the flat main gradients (with a loss scaler), global-norm clipping, the update of
     * the F32 main weights, then one cast of them into the model's compute copy. The norm and the
     * inf check are one reduction each over the flat gradient store, so a device backend
     * synchronises with the host twice per iteration here, not per parameter.
     *
     * <p>With AdamW the clip's scaling and the cast are folded into the optimizer's one pass over
     * the parameters ({@link AdamW#step(float, float, List)}), the same bits as the separate
     * passes SGD keeps: the clip coefficient waits in {@code pendingGradScale} for the step, so
     * between {@link #clipGradNorm} and {@link #step} the gradients are not yet scaled.
     */
    public static final class ModelOptimizer implements TrainingOptimizer, AutoCloseable {
        private final String name;
        private final Optimizer inner;
        private final AdamW fused;                  // inner when it folds the clip and the cast in, else null
        private final List<Tensor> computeCopies;   // per parameter, in AdamW's order; null in fp32 (the weights themselves)
        private final GPTModel model;
        private final Tensor flatGrad;
        private final long flatPadding;             // elements of flatGrad that belong to no parameter
        private final Backend backend;
        private final LossScaler scaler;
        private float pendingGradScale = 1f;        // the last clip's coefficient, for the fused step

        ModelOptimizer(String name, Optimizer inner, GPTModel model, LossScaler scaler) {
            this.name = name;
            this.inner = inner;
            this.fused = inner instanceof AdamW adam ? adam : null;
            this.computeCopies = model.parameterStore().computeDtype() == DType.F32 ? null
                    : model.parameters().stream().map(Parameter::compute).toList();
            this.model = model;
            this.flatGrad = model.parameterStore().flatGrad();
            // padding and buffers: zero elements of flatGrad that are no parameter's gradient
            this.flatPadding = flatGrad.numel() - model.parameterCount();
            this.backend = model.backend();
            this.scaler = scaler;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public double paramsNorm() {
            double squares = backend.sumOfSquares(model.parameterStore().flatData());
            for (Parameter p : model.parameters()) {   // Megatron's norm covers parameters, not buffers
                if (org.megatronj.model.ParameterSpec.isBuffer(p.name())) {
                    squares -= backend.sumOfSquares(p.data());
                }
            }
            return Math.sqrt(Math.max(0, squares));
        }

        @Override
        public void setWeightDecay(double weightDecay) {
            inner.setWeightDecay((float) weightDecay);
        }

        @Override
        public void setDecoupledLr(double lr) {
            inner.setDecoupledLr((float) lr);
        }

        @Override
        public long zerosInGradients() {
            return backend.countZeros(flatGrad) - flatPadding;   // the store's padding is zero and no gradient
        }

        @Override
        public double clipGradNorm(double maxNorm) {
            if (fused == null) {
                return maxNorm > 0 ? GradClipping.clip(flatGrad, backend, maxNorm) : GradClipping.globalNorm(flatGrad, backend);
            }
            double norm = GradClipping.globalNorm(flatGrad, backend);
            pendingGradScale = maxNorm > 0 ? GradClipping.coefficient(norm, maxNorm) : 1f;
            return norm;
        }

        @Override
        public void step(double lr) {
            if (fused == null) {
                inner.step((float) lr);
                model.refreshComputeWeights();
                return;
            }
            fused.step((float) lr, pendingGradScale, computeCopies);
            pendingGradScale = 1f;
        }

        @Override
        public LossScaler lossScaler() {
            return scaler;
        }

        @Override
        public boolean unscaleAndCheckForInfOrNan(float inverseScale) {
            if (inverseScale != 1f) {
                backend.scale(flatGrad, inverseScale);
            }
            return backend.hasInfOrNan(flatGrad);
        }

        @Override
        public Map<String, Tensor> stateTensors() {
            return inner.stateTensors();
        }

        @Override
        public long stepCount() {
            return inner.stepCount();
        }

        @Override
        public void setStepCount(long steps) {
            inner.setStepCount(steps);
        }

        @Override
        public void close() {
            if (inner instanceof AutoCloseable c) {
                try {
                    c.close();
                } catch (Exception e) {
                    throw new IllegalStateException("closing the optimizer: " + e.getMessage(), e);
                }
            }
        }
    }
}
