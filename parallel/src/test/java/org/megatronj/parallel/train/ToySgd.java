package org.megatronj.parallel.train;

import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.Parameter;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** SGD with momentum in plain Java, with checkpointable state, for trainer tests. */
final class ToySgd implements TrainingOptimizer {
    private final List<Parameter> params;
    private final Map<String, Tensor> momentum = new LinkedHashMap<>();
    private long steps;

    ToySgd(TensorArena arena, List<Parameter> params) {
        this.params = params;
        for (Parameter p : params) {
            momentum.put(p.name() + ".momentum_buffer", arena.allocate(DType.F32, p.data().shape()));
        }
    }

    @Override
    public String name() {
        return "sgd";
    }

    @Override
    public double clipGradNorm(double maxNorm) {
        double sq = 0;
        for (Parameter p : params) {
            for (long i = 0; i < p.numel(); i++) {
                double g = p.grad().getFloat(i);
                sq += g * g;
            }
        }
        double norm = Math.sqrt(sq);
        if (maxNorm > 0 && norm > maxNorm) {
            float c = (float) (maxNorm / (norm + 1e-6));
            for (Parameter p : params) {
                for (long i = 0; i < p.numel(); i++) {
                    p.grad().setFloat(i, p.grad().getFloat(i) * c);
                }
            }
        }
        return norm;
    }

    @Override
    public void setWeightDecay(double weightDecay) {
        if (weightDecay != 0) {
            throw new UnsupportedOperationException("the toy SGD has no weight decay");
        }
    }

    @Override
    public void setDecoupledLr(double lr) {
        throw new UnsupportedOperationException("the toy SGD has one learning rate");
    }

    @Override
    public long zerosInGradients() {
        long zeros = 0;
        for (Parameter p : params) {
            for (long i = 0; i < p.numel(); i++) {
                zeros += p.grad().getFloat(i) == 0f ? 1 : 0;
            }
        }
        return zeros;
    }

    @Override
    public void step(double lr) {
        for (Parameter p : params) {
            Tensor m = momentum.get(p.name() + ".momentum_buffer");
            for (long i = 0; i < p.numel(); i++) {
                float v = 0.9f * m.getFloat(i) + p.grad().getFloat(i);
                m.setFloat(i, v);
                p.data().setFloat(i, p.data().getFloat(i) - (float) lr * v);
            }
        }
        steps++;
    }

    @Override
    public Map<String, Tensor> stateTensors() {
        return momentum;
    }

    @Override
    public long stepCount() {
        return steps;
    }

    @Override
    public void setStepCount(long s) {
        steps = s;
    }
}
