package org.megatronj.parallel.train;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;
import org.megatronj.model.optim.AdamW;
import org.megatronj.model.optim.GradClipping;
import org.megatronj.model.optim.Optimizer;
import org.megatronj.model.optim.Sgd;

import java.util.List;
import java.util.Map;

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
            public void zeroGrad() {
                model.zeroGrad();
            }
        };
    }

    /** AdamW or SGD (with {@code --clip-grad}) over {@code parameters} as {@code config} says. */
    public static ModelOptimizer optimizer(OptimizerConfig config, List<Parameter> parameters, Backend backend) {
        Optimizer inner = switch (config.type()) {
            case ADAM -> new AdamW(parameters, backend, (float) config.adamBeta1(), (float) config.adamBeta2(),
                    (float) config.adamEps(), (float) config.weightDecay());
            case SGD -> new Sgd(parameters, backend, (float) config.sgdMomentum(), (float) config.weightDecay());
        };
        return new ModelOptimizer(config.type().flagValue(), inner, parameters, backend);
    }

    /** A model/optim optimizer with Megatron's global-norm clipping in front. */
    public static final class ModelOptimizer implements TrainingOptimizer, AutoCloseable {
        private final String name;
        private final Optimizer inner;
        private final List<Parameter> parameters;
        private final Backend backend;

        ModelOptimizer(String name, Optimizer inner, List<Parameter> parameters, Backend backend) {
            this.name = name;
            this.inner = inner;
            this.parameters = parameters;
            this.backend = backend;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public double clipGradNorm(double maxNorm) {
            return maxNorm > 0 ? GradClipping.clip(parameters, backend, maxNorm) : GradClipping.globalNorm(parameters, backend);
        }

        @Override
        public void step(double lr) {
            inner.step((float) lr);
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
