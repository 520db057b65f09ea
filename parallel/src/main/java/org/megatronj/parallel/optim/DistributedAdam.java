package org.megatronj.parallel.optim;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.optim.Optimizer;
import org.megatronj.parallel.comm.Communicator;

/**
 * Megatron's distributed optimizer ({@code --use-distributed-optimizer}) with Adam(W): each
 * data-parallel rank keeps the Adam moments of its own shard of each gradient bucket only
 * ({@link FlatShard}), updates the fp32 parameters of that shard from its reduce-scattered
 * gradient (see {@link ParallelGradients#synchronize()}), then all-gathers the updated parameters
 * bucket by bucket so that every rank holds the whole model again. The moments take 1/DP of the memory of plain Adam. With fp32
 * parameters the "main params" are the model's own (no separate copy).
 *
 * <p>The update is the same element-wise AdamW as {@link org.megatronj.model.optim.AdamW}, so a run
 * with and without the distributed optimizer takes bitwise the same steps from the same gradients.
 */
public final class DistributedAdam implements Optimizer, AutoCloseable {
    private final List<FlatShard> shards;    // one per model chunk
    private final List<Tensor> flatData;     // each chunk's flat parameter store
    private final Communicator dataParallel;
    private final Backend backend;
    private final float beta1;
    private final float beta2;
    private final float eps;
    private float weightDecay;
    private float decoupledLr = Float.NaN;
    private final TensorArena arena = TensorArena.named("distributed-adam-state");
    private final List<Tensor> expAvg = new ArrayList<>();      // [shard numel] per chunk
    private final List<Tensor> expAvgSq = new ArrayList<>();
    private long steps;

    public DistributedAdam(List<FlatShard> shards, List<Tensor> flatData, Communicator dataParallel, Backend backend,
                           float beta1, float beta2, float eps, float weightDecay) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("--adam-beta1 and --adam-beta2 must be in [0, 1), got " + beta1 + ", " + beta2);
        }
        if (!(eps > 0)) {
            throw new IllegalArgumentException("--adam-eps must be positive, got " + eps);
        }
        if (shards.size() != flatData.size()) {
            throw new IllegalArgumentException(shards.size() + " shards for " + flatData.size() + " parameter stores");
        }
        for (int c = 0; c < shards.size(); c++) {
            if (shards.get(c).numel() * dataParallel.size() != flatData.get(c).numel()) {
                throw new IllegalArgumentException("distributed optimizer: shard of " + shards.get(c).numel() + " elements x DP "
                        + dataParallel.size() + " does not cover the flat store of " + flatData.get(c).numel() + " elements");
            }
        }
        this.shards = List.copyOf(shards);
        this.flatData = List.copyOf(flatData);
        this.dataParallel = dataParallel;
        this.backend = backend;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        for (FlatShard shard : shards) {
            Tensor m = backend.allocate(arena, DType.F32, shard.numel());
            Tensor v = backend.allocate(arena, DType.F32, shard.numel());
            backend.fill(m, 0f);
            backend.fill(v, 0f);
            expAvg.add(m);
            expAvgSq.add(v);
        }
    }

    /** Updates this rank's shards, then all-gathers the parameters over the data-parallel group. */
    @Override
    public void setDecoupledLr(float lr) {
        this.decoupledLr = lr;
    }

    @Override
    public void setWeightDecay(float weightDecay) {
        this.weightDecay = Optimizer.checkedWeightDecay(weightDecay);
    }

    @Override
    public void step(float lr) {
        steps++;
        for (int c = 0; c < shards.size(); c++) {
            FlatShard shard = shards.get(c);
            Tensor data = flatData.get(c);
            // One multi-tensor op over this rank's pieces of the chunk's parameters (one GPU launch), two with
            // --decoupled-lr (the embedding and output pieces at their own rate)
            for (boolean decoupled : Float.isNaN(decoupledLr) ? new boolean[] {false} : new boolean[] {false, true}) {
                List<Tensor> params = new ArrayList<>();
                List<Tensor> grads = new ArrayList<>();
                List<Tensor> ms = new ArrayList<>();
                List<Tensor> vs = new ArrayList<>();
                List<Float> decays = new ArrayList<>();
                for (FlatShard.Segment s : shard.segments()) {
                    var p = s.parameter();
                    if (!Float.isNaN(decoupledLr) && Optimizer.isEmbeddingOrOutput(p) != decoupled) {
                        continue;
                    }
                    long at = s.stateOffset();
                    params.add(flat(p.data()).view(s.from(), s.to()));
                    grads.add(flat(p.grad()).view(s.from(), s.to()));
                    ms.add(expAvg.get(c).view(at, at + s.numel()));
                    vs.add(expAvgSq.get(c).view(at, at + s.numel()));
                    decays.add(p.weightDecay() ? weightDecay : 0f);
                }
                if (!params.isEmpty()) {
                    float[] d = new float[decays.size()];
                    for (int i = 0; i < d.length; i++) {
                        d[i] = decays.get(i);
                    }
                    backend.multiTensorAdamW(params, grads, ms, vs, d, decoupled ? decoupledLr : lr, beta1, beta2, eps, steps);
                }
            }
            if (dataParallel.size() > 1) {
                // Each bucket's shards gather back into the bucket (in place), as Megatron's param all-gather.
                for (FlatShard.Range r : shard.ranges()) {
                    long bucketSize = r.numel() * dataParallel.size();
                    long bucketStart = r.start() - dataParallel.rank() * r.numel();
                    dataParallel.allGather(data.view(r.start(), r.end()), data.view(bucketStart, bucketStart + bucketSize));
                }
            }
        }
    }

    /**
     * The whole of chunk {@code chunk}'s first ({@code exp_avg}) or second ({@code exp_avg_sq})
     * moment laid out like its flat parameter store, all-gathered from the data-parallel ranks'
     * shards (a collective over DP; padding between parameters is 0).
     */
    public float[] gatherState(int chunk, boolean second) {
        FlatShard shard = shards.get(chunk);
        Tensor state = (second ? expAvgSq : expAvg).get(chunk);
        int dp = dataParallel.size();
        float[] store = new float[Math.toIntExact(flatData.get(chunk).numel())];
        try (TensorArena scratch = TensorArena.named("distributed-adam-gather")) {
            for (FlatShard.Range r : shard.ranges()) {
                Tensor mine = scratch.allocate(DType.F32, r.numel());
                backend.copy(state.view(r.stateOffset(), r.stateOffset() + r.numel()), mine);
                Tensor bucket = scratch.allocate(DType.F32, r.numel() * dp);
                dataParallel.allGather(mine, bucket);
                long bucketStart = r.start() - dataParallel.rank() * r.numel();
                System.arraycopy(bucket.toFloatArray(), 0, store, Math.toIntExact(bucketStart), Math.toIntExact(bucket.numel()));
            }
        }
        return store;
    }

    /** Sets this rank's shard of a moment from an array laid out like the chunk's flat store (the inverse of {@link #gatherState}). */
    public void loadState(int chunk, boolean second, float[] store) {
        FlatShard shard = shards.get(chunk);
        Tensor state = (second ? expAvgSq : expAvg).get(chunk);
        try (TensorArena scratch = TensorArena.named("distributed-adam-load")) {
            for (FlatShard.Range r : shard.ranges()) {
                float[] part = java.util.Arrays.copyOfRange(store, Math.toIntExact(r.start()), Math.toIntExact(r.end()));
                backend.copy(scratch.fromFloats(part, part.length), state.view(r.stateOffset(), r.stateOffset() + r.numel()));
            }
            backend.synchronize();
        }
    }

    /** Which pieces of chunk {@code chunk}'s parameters this rank keeps state for (sharded checkpoints write them). */
    public FlatShard shard(int chunk) {
        return shards.get(chunk);
    }

    private static Tensor flat(Tensor t) {
        return t.reshape(t.numel());
    }

    /** This rank's moments as flat shard tensors per model chunk: {@code chunk<c>.exp_avg} and {@code chunk<c>.exp_avg_sq}. */
    @Override
    public Map<String, Tensor> stateTensors() {
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (int c = 0; c < shards.size(); c++) {
            m.put("chunk" + c + ".exp_avg", expAvg.get(c));
            m.put("chunk" + c + ".exp_avg_sq", expAvgSq.get(c));
        }
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
