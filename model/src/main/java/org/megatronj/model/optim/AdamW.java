package org.megatronj.model.optim;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.Parameter;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Adam with decoupled weight decay, as Megatron's default optimizer (apex/TE FusedAdam with
 * {@code adam_w_mode=True}): per parameter
 * <pre>
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p -= lr * ( (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd * p )
 * </pre>
 * Weight decay applies only to parameters with {@link Parameter#weightDecay()} (not biases or
 * norm weights, Megatron's default). Moments are F32, zero-initialised, in their own arena.
 *
 * <p>A step is one {@link Backend#multiTensorAdamW} over all parameters (one GPU launch, as
 * Megatron's multi-tensor Adam), with the same results as one {@code adamW} per parameter. It can
 * take the gradient clip's coefficient and write the 16-bit compute weights in the same pass
 * ({@link #step(float, float, List)}).
 */
public final class AdamW implements Optimizer, AutoCloseable {
    private final List<Parameter> parameters;
    private final Backend backend;
    private final float beta1;
    private final float beta2;
    private final float eps;
    private float weightDecay;
    private final TensorArena arena = TensorArena.named("adam-state");
    private final Tensor[] expAvg;
    private final Tensor[] expAvgSq;
    private final Map<String, Tensor> state;
    // the lists multiTensorAdamW walks, built once: same tensors every step
    private final List<Tensor> params;
    private final List<Tensor> grads;
    private final float[] weightDecays;
    private float decoupledLr = Float.NaN;
    private long steps;

    /** Megatron's flags: {@code --adam-beta1 0.9 --adam-beta2 0.999 --adam-eps 1e-8 --weight-decay 0.01}. */
    public AdamW(List<Parameter> parameters, Backend backend, float beta1, float beta2, float eps, float weightDecay) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("--adam-beta1 and --adam-beta2 must be in [0, 1), got " + beta1 + ", " + beta2);
        }
        if (!(eps > 0)) {
            throw new IllegalArgumentException("--adam-eps must be positive, got " + eps);
        }
        if (!(weightDecay >= 0)) {
            throw new IllegalArgumentException("--weight-decay must be >= 0, got " + weightDecay);
        }
        this.parameters = List.copyOf(parameters);
        this.backend = backend;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        this.expAvg = new Tensor[this.parameters.size()];
        this.expAvgSq = new Tensor[this.parameters.size()];
        Map<String, Tensor> s = new LinkedHashMap<>();
        for (int i = 0; i < expAvg.length; i++) {
            Parameter p = this.parameters.get(i);
            expAvg[i] = backend.allocate(arena, DType.F32, p.data().shape());
            expAvgSq[i] = backend.allocate(arena, DType.F32, p.data().shape());
            s.put(p.name() + ".exp_avg", expAvg[i]);
            s.put(p.name() + ".exp_avg_sq", expAvgSq[i]);
        }
        this.state = Collections.unmodifiableMap(s);
        this.params = this.parameters.stream().map(Parameter::data).toList();
        this.grads = this.parameters.stream().map(Parameter::grad).toList();
        this.weightDecays = new float[this.parameters.size()];
        for (int i = 0; i < weightDecays.length; i++) {
            weightDecays[i] = this.parameters.get(i).weightDecay() ? weightDecay : 0f;
        }
    }

    @Override
    public void setWeightDecay(float weightDecay) {
        this.weightDecay = Optimizer.checkedWeightDecay(weightDecay);
        for (int i = 0; i < weightDecays.length; i++) {
            weightDecays[i] = parameters.get(i).weightDecay() ? weightDecay : 0f;
        }
    }

    @Override
    public void step(float lr) {
        step(lr, 1f, null);
    }

    /**
     * One update with each gradient multiplied by {@code gradScale} on the fly (the clip
     * coefficient; the gradients are not written) and, when {@code computeCopies} is not null, the
     * updated weights cast into them, element i for parameter i: the same bits as scaling the
     * gradients, {@link #step(float)}, then casting, in one pass over the parameters.
     */
    public void step(float lr, float gradScale, List<Tensor> computeCopies) {
        steps++;
        if (Float.isNaN(decoupledLr)) {
            backend.multiTensorAdamW(params, grads, Arrays.asList(expAvg), Arrays.asList(expAvgSq), weightDecays, lr, beta1,
                    beta2, eps, steps, gradScale, computeCopies);
            return;
        }
        for (boolean decoupled : new boolean[] {false, true}) {   // --decoupled-lr: two groups, as Megatron's param groups
            List<Integer> group = new ArrayList<>();
            for (int i = 0; i < parameters.size(); i++) {
                if (Optimizer.isEmbeddingOrOutput(parameters.get(i)) == decoupled) {
                    group.add(i);
                }
            }
            if (group.isEmpty()) {
                continue;
            }
            float[] decays = new float[group.size()];
            for (int k = 0; k < decays.length; k++) {
                decays[k] = weightDecays[group.get(k)];
            }
            backend.multiTensorAdamW(pick(params, group), pick(grads, group), pick(Arrays.asList(expAvg), group),
                    pick(Arrays.asList(expAvgSq), group), decays, decoupled ? decoupledLr : lr, beta1, beta2, eps, steps,
                    gradScale, computeCopies == null ? null : pick(computeCopies, group));
        }
    }

    private static List<Tensor> pick(List<Tensor> all, List<Integer> indices) {
        return indices.stream().map(all::get).toList();
    }

    @Override
    public void setDecoupledLr(float lr) {
        this.decoupledLr = lr;
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
