package org.megatronj.model.optim;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.Parameter;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SGD as torch.optim.SGD (Megatron's {@code --optimizer sgd}, dampening 0, no Nesterov):
 * <pre>
 *   d = g + wd * p
 *   buf = d (first step), else buf = momentum * buf + d       (momentum > 0 only)
 *   p -= lr * buf   (or lr * d without momentum)
 * </pre>
 * Gradients are left untouched. Weight decay applies only to parameters that take it.
 */
public final class Sgd implements Optimizer, AutoCloseable {
    private final List<Parameter> parameters;
    private final Backend backend;
    private final float momentum;
    private float weightDecay;
    private float decoupledLr = Float.NaN;
    private final TensorArena arena = TensorArena.named("sgd-state");
    private final Tensor[] momentumBuffers;   // null without momentum
    private final Map<String, Tensor> state;
    private long steps;

    /** {@code --sgd-momentum 0.9 --weight-decay 0.01}. */
    public Sgd(List<Parameter> parameters, Backend backend, float momentum, float weightDecay) {
        if (!(momentum >= 0 && momentum < 1)) {
            throw new IllegalArgumentException("--sgd-momentum must be in [0, 1), got " + momentum);
        }
        if (!(weightDecay >= 0)) {
            throw new IllegalArgumentException("--weight-decay must be >= 0, got " + weightDecay);
        }
        this.parameters = List.copyOf(parameters);
        this.backend = backend;
        this.momentum = momentum;
        this.weightDecay = weightDecay;
        Map<String, Tensor> s = new LinkedHashMap<>();
        if (momentum > 0) {
            momentumBuffers = new Tensor[this.parameters.size()];
            for (int i = 0; i < momentumBuffers.length; i++) {
                Parameter p = this.parameters.get(i);
                momentumBuffers[i] = backend.allocate(arena, DType.F32, p.data().shape());
                s.put(p.name() + ".momentum_buffer", momentumBuffers[i]);
            }
        } else {
            momentumBuffers = null;
        }
        this.state = Collections.unmodifiableMap(s);
    }

    @Override
    public void setWeightDecay(float weightDecay) {
        this.weightDecay = Optimizer.checkedWeightDecay(weightDecay);
    }

    @Override
    public void setDecoupledLr(float lr) {
        this.decoupledLr = lr;
    }

    @Override
    public void step(float stepLr) {
        for (int i = 0; i < parameters.size(); i++) {
            Parameter p = parameters.get(i);
            float lr = !Float.isNaN(decoupledLr) && Optimizer.isEmbeddingOrOutput(p) ? decoupledLr : stepLr;
            float wd = p.weightDecay() ? weightDecay : 0f;
            if (momentumBuffers == null) {
                // p = p (1 - lr wd) - lr g
                if (wd != 0f) {
                    backend.scale(p.data(), 1f - lr * wd);
                }
                backend.axpy(-lr, p.grad(), p.data());
                continue;
            }
            Tensor buf = momentumBuffers[i];
            if (steps == 0) {
                backend.copy(p.grad(), buf);
            } else {
                backend.scale(buf, momentum);
                backend.axpy(1f, p.grad(), buf);
            }
            if (wd != 0f) {
                backend.axpy(wd, p.data(), buf);
            }
            backend.axpy(-lr, buf, p.data());
        }
        steps++;
    }

    @Override
    public Map<String, Tensor> stateTensors() {
        return state;
    }

    @Override
    public long stepCount() {
        return steps;
    }

    @Override
    public void setStepCount(long steps) {
        if (steps < 0) {
            throw new IllegalArgumentException("step count must be >= 0, got " + steps);
        }
        this.steps = steps;
    }

    @Override
    public void close() {
        arena.close();
    }
}
