package org.megatronj.model;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.layers.HostTransfer;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * All parameters of a model in two flat F32 buffers, one for the weights and one for their
 * gradients, carved into per-parameter views in the spec order (each start aligned to 16
 * floats). One flat gradient buffer zeroes in one op and is what data-parallel bucketing and
 * the distributed optimizer slice.
 *
 * <p>With mixed precision a third flat buffer of the compute dtype (BF16/F16), allocated once
 * and laid out as the other two, holds the weights the layers read ({@link Parameter#compute()});
 * {@link #refreshComputeWeights} fills it from the F32 main weights in one cast op.
 */
public final class ParameterStore implements AutoCloseable {
    private static final long ALIGN_FLOATS = 16;
    private static final int INIT_CHUNK = 1 << 20;

    private final TensorArena arena;
    private final Tensor flatData;   // [total]
    private final Tensor flatGrad;   // [total]
    private final Tensor flatCompute; // [total] in the compute dtype, or flatData itself in fp32
    private final List<Parameter> parameters;
    private final Map<String, Parameter> byName;

    public ParameterStore(Backend backend, List<ParameterSpec> specs) {
        this(backend, specs, 1);
    }

    /**
     * A store whose flat length is a multiple of {@code 16 * shards} floats, so that the
     * distributed optimizer cuts it into {@code shards} equal, aligned pieces.
     */
    public ParameterStore(Backend backend, List<ParameterSpec> specs, int shards) {
        this(backend, specs, shards, DType.F32);
    }

    /**
     * As {@link #ParameterStore(Backend, List, int)}, with the layers computing in
     * {@code computeDtype} (F32, BF16 or F16): other than F32 adds the flat compute copy.
     */
    public ParameterStore(Backend backend, List<ParameterSpec> specs, int shards, DType computeDtype) {
        if (!computeDtype.isFloatingPoint()) {
            throw new IllegalArgumentException("compute dtype must be F32, BF16 or F16, got " + computeDtype);
        }
        if (shards < 1) {
            throw new IllegalArgumentException("parameter store shards must be >= 1, got " + shards);
        }
        long total = 0;
        long[] offsets = new long[specs.size()];
        for (int i = 0; i < specs.size(); i++) {
            offsets[i] = total;
            total += (specs.get(i).numel() + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
        }
        long multiple = ALIGN_FLOATS * shards;
        total = Math.max(multiple, (total + multiple - 1) / multiple * multiple);
        this.arena = TensorArena.named("parameters");
        this.flatData = backend.allocate(arena, DType.F32, total);
        this.flatGrad = backend.allocate(arena, DType.F32, total);
        this.flatCompute = computeDtype == DType.F32 ? flatData : backend.allocate(arena, computeDtype, total);
        List<Parameter> list = new ArrayList<>();
        Map<String, Parameter> map = new LinkedHashMap<>();
        for (int i = 0; i < specs.size(); i++) {
            ParameterSpec spec = specs.get(i);
            long from = offsets[i];
            long to = from + spec.numel();
            Tensor data = flatData.view(from, to).reshape(spec.shape());
            Tensor compute = flatCompute == flatData ? data : flatCompute.view(from, to).reshape(spec.shape());
            Parameter p = new Parameter(spec.name(), data, compute, flatGrad.view(from, to).reshape(spec.shape()),
                    spec.weightDecay());
            if (map.put(spec.name(), p) != null) {
                throw new IllegalArgumentException("duplicate parameter name " + spec.name());
            }
            list.add(p);
        }
        this.parameters = Collections.unmodifiableList(list);
        this.byName = Collections.unmodifiableMap(map);
    }

    /**
     * Megatron's initialisation: normal(0, std) weights (std / sqrt(2L) for the output layers),
     * zero biases, unit norm weights. Each parameter draws from its own streams seeded by
     * {@code (seed, name, chunk)}, so the values depend neither on the order or set of parameters
     * nor on the number of threads.
     */
    public void initialize(Backend backend, List<ParameterSpec> specs, TransformerConfig config, long seed) {
        initialize(backend, specs, config, seed, 1, 0);
    }

    /**
     * The same initialisation for tensor-parallel rank {@code rank} of {@code t}: the whole tensor
     * is drawn as on one rank and this rank keeps its shard, so that every TP layout starts from
     * the single-rank model's weights (Megatron draws the master weight on each rank and splits
     * it with {@code --use-cpu-initialization}; the idea is the same).
     */
    public void initialize(Backend backend, List<ParameterSpec> specs, TransformerConfig config, long seed, int t, int rank) {
        for (ParameterSpec spec : specs) {
            long[] full = spec.fullShape(t);
            long fullNumel = 1;
            for (long d : full) {
                fullNumel *= d;
            }
            float[] values = new float[Math.toIntExact(fullNumel)];
            switch (spec.init()) {
                case NORMAL -> gaussian(values, config.initMethodStd(), seed, spec.name());
                case SCALED_NORMAL -> gaussian(values, config.outputLayerInitStd(), seed, spec.name());
                case ZEROS -> { }
                case ONES -> java.util.Arrays.fill(values, 1f);
            }
            float[] shard = TensorShards.shard(values, full, spec.split(), t, rank);
            HostTransfer.uploadFloats(backend, shard, byName.get(spec.name()).data());
        }
        refreshComputeWeights(backend);
    }

    /**
     * Casts all main weights to the compute copy in one op (round to nearest even; a no-op in
     * fp32). Call after anything writes the main weights: the optimizer step, a checkpoint load.
     * Queued on the backend's stream like any op: no host synchronisation.
     */
    public void refreshComputeWeights(Backend backend) {
        if (flatCompute != flatData) {
            backend.cast(flatData, flatCompute);
        }
    }

    /** The dtype the layers compute with (F32 unless mixed precision). */
    public DType computeDtype() {
        return flatCompute.dtype();
    }

    /** All compute weights, flat: {@link #flatData()} in fp32, else its 16-bit copy. */
    public Tensor flatCompute() {
        return flatCompute;
    }

    private static void gaussian(float[] values, float std, long seed, String name) {
        // Fixed chunks with their own streams: the values depend on (seed, name) only, not on the thread count.
        int chunks = (values.length + INIT_CHUNK - 1) / INIT_CHUNK;
        IntStream.range(0, chunks).parallel().forEach(chunk -> {
            SplittableRandom random = new SplittableRandom(
                    (seed * 0x9E3779B97F4A7C15L + name.hashCode()) * 0xBF58476D1CE4E5B9L + chunk);
            int end = Math.min(values.length, (chunk + 1) * INIT_CHUNK);
            for (int i = chunk * INIT_CHUNK; i < end; i++) {
                values[i] = (float) (random.nextGaussian() * std);
            }
        });
    }

    public List<Parameter> parameters() {
        return parameters;
    }

    /** The parameter of that name, or an exception listing a few valid names. */
    public Parameter parameter(String name) {
        Parameter p = byName.get(name);
        if (p == null) {
            throw new IllegalArgumentException("no parameter named '" + name + "'; the model has " + byName.size()
                    + " parameters, e.g. " + parameters.getFirst().name() + ", " + parameters.getLast().name());
        }
        return p;
    }

    /** All weights, flat (padding between parameters included). */
    public Tensor flatData() {
        return flatData;
    }

    /** All gradients, flat, in the same places as {@link #flatData()}. */
    public Tensor flatGrad() {
        return flatGrad;
    }

    /** Where parameter {@code name} starts in the flat buffers (in elements). */
    public long offset(String name) {
        return parameter(name).data().address() / Float.BYTES - flatData.address() / Float.BYTES;
    }

    public long numel() {
        long n = 0;
        for (Parameter p : parameters) {
            n += p.numel();
        }
        return n;
    }

    @Override
    public void close() {
        arena.close();
    }
}
