package org.megatronj.parallel.optim;

import java.util.LinkedHashMap;
import java.util.Map;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.optim.Optimizer;
import org.megatronj.parallel.comm.Communicator;

/**
 * Megatron's distributed optimizer ({@code --use-distributed-optimizer}) with Adam(W): each
 * data-parallel rank keeps the Adam moments of its own shard of the flat parameter store only,
 * updates the fp32 parameters of that shard from its reduce-scattered gradient (see
 * {@link ParallelGradients#synchronize()}), then all-gathers the updated parameters so that every
 * rank holds the whole model again. The moments take 1/DP of the memory of plain Adam. With fp32
 * parameters the "main params" are the model's own (no separate copy).
 *
 * <p>The update is the same element-wise AdamW as {@link org.megatronj.model.optim.AdamW}, so a run
 * with and without the distributed optimizer takes bitwise the same steps from the same gradients.
 */
public final class DistributedAdam implements Optimizer, AutoCloseable {
    private final FlatShard shard;
    private final Tensor flatData;
    private final Communicator dataParallel;
    private final Backend backend;
    private final float beta1;
    private final float beta2;
    private final float eps;
    private final float weightDecay;
    private final TensorArena arena = TensorArena.named("distributed-adam-state");
    private final Tensor expAvg;      // [shard numel]
    private final Tensor expAvgSq;    // [shard numel]
    private long steps;

    public DistributedAdam(FlatShard shard, Tensor flatData, Communicator dataParallel, Backend backend,
                           float beta1, float beta2, float eps, float weightDecay) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("--adam-beta1 and --adam-beta2 must be in [0, 1), got " + beta1 + ", " + beta2);
        }
        if (!(eps > 0)) {
            throw new IllegalArgumentException("--adam-eps must be positive, got " + eps);
        }
        if (shard.numel() * dataParallel.size() != flatData.numel()) {
            throw new IllegalArgumentException("distributed optimizer: shard of " + shard.numel() + " elements x DP "
                    + dataParallel.size() + " does not cover the flat store of " + flatData.numel() + " elements");
        }
        this.shard = shard;
        this.flatData = flatData;
        this.dataParallel = dataParallel;
        this.backend = backend;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        this.expAvg = backend.allocate(arena, DType.F32, shard.numel());
        this.expAvgSq = backend.allocate(arena, DType.F32, shard.numel());
        backend.fill(expAvg, 0f);
        backend.fill(expAvgSq, 0f);
    }

    /** Updates this rank's shard, then all-gathers the parameters over the data-parallel group. */
    @Override
    public void step(float lr) {
        steps++;
        for (FlatShard.Segment s : shard.segments()) {
            var p = s.parameter();
            long at = offsetInShard(s);
            backend.adamW(flat(p.data()).view(s.from(), s.to()), flat(p.grad()).view(s.from(), s.to()),
                    expAvg.view(at, at + s.numel()), expAvgSq.view(at, at + s.numel()),
                    lr, beta1, beta2, eps, p.weightDecay() ? weightDecay : 0f, steps);
        }
        if (dataParallel.size() > 1) {
            dataParallel.allGather(flatData.view(shard.start(), shard.end()), flatData);
        }
    }

    /** Where segment s's moments live in this shard's state (its place in the flat store, shifted). */
    private long offsetInShard(FlatShard.Segment s) {
        long storeOffset = (s.parameter().data().address() - flatData.address()) / Float.BYTES;
        return storeOffset + s.from() - shard.start();
    }

    private static Tensor flat(Tensor t) {
        return t.reshape(t.numel());
    }

    /** This rank's moments as flat shard tensors: {@code exp_avg} and {@code exp_avg_sq} over {@code [start, end)}. */
    @Override
    public Map<String, Tensor> stateTensors() {
        Map<String, Tensor> m = new LinkedHashMap<>();
        m.put("exp_avg", expAvg);
        m.put("exp_avg_sq", expAvgSq);
        return m;
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
