package org.megatronj.memory.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

/**
 * GELU (tanh approximation and exact erf form), squared ReLU, SwiGLU and dropout, forward and backward.
 * Inputs are loaded in blocks as fp32, outputs rounded to their dtype on store.
 *
 * <p>Java has no {@code erf}; {@link #erfc} is the Chebyshev fit of Numerical Recipes
 * ({@code erfcc}), whose relative error is below 1.2e-7 over the whole real line, so
 * {@code gelu(x) = 0.5 x erfc(-x / sqrt 2)} keeps full fp32 precision also for large negative x
 * where {@code 1 + erf} would cancel.
 */
final class ActivationKernels {
    /** The vector species, a constant so that the JIT compiles vector ops to SIMD instructions. */
    private static final VectorSpecies<Float> S = VectorMath.SPECIES;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    static final float SQRT_2_OVER_PI = 0.7978845608028654f;
    static final float GELU_K = 0.044715f;
    static final float INV_SQRT_2 = 0.7071067811865476f;
    static final float INV_SQRT_2PI = 0.3989422804014327f;

    private final CpuThreads threads;
    private final boolean vector;

    ActivationKernels(CpuThreads threads, boolean vectorized) {
        this.threads = threads;
        this.vector = vectorized;
    }

    // ------------------------------------------------------------------ gelu and squared relu

    /** The elementwise activations: one dispatch and one dtype handling for all. */
    enum Kind {
        GELU_TANH, GELU_ERF, SQUARED_RELU;

        static Kind gelu(boolean tanh) {
            return tanh ? GELU_TANH : GELU_ERF;
        }
    }

    /** {@code y = act(x)}. */
    void forward(Tensor x, Tensor y, Kind act) {
        if (vector && x.dtype() == DType.F32 && y.dtype() == DType.F32) {
            MemorySegment xs = x.segment();
            MemorySegment ys = y.segment();
            forRanges(x.numel(), switch (act) {
                case GELU_TANH -> (from, to) -> geluTanhF32(xs, ys, from, to);
                case GELU_ERF -> (from, to) -> geluErfF32(xs, ys, from, to);
                case SQUARED_RELU -> (from, to) -> squaredReluF32(xs, ys, from, to);
            });
            return;
        }
        Blocks.run(threads, x.numel(), (from, len, xs, ys, unused) -> {
            FloatRows.load(x, from, xs, 0, len);
            int i = 0;
            if (vector) {
                for (int bound = S.loopBound(len); i < bound; i += S.length()) {
                    apply(act, FloatVector.fromArray(S, xs, i)).intoArray(ys, i);
                }
            }
            for (; i < len; i++) {
                ys[i] = apply(act, xs[i]);
            }
            FloatRows.store(ys, 0, y, from, len);
        });
    }

    /** {@code dx = dy * act'(x)}. */
    void backward(Tensor x, Tensor dy, Tensor dx, Kind act) {
        if (vector && x.dtype() == DType.F32 && dy.dtype() == DType.F32 && dx.dtype() == DType.F32) {
            MemorySegment xs = x.segment();
            MemorySegment dys = dy.segment();
            MemorySegment dxs = dx.segment();
            forRanges(x.numel(), switch (act) {
                case GELU_TANH -> (from, to) -> geluTanhGradF32(xs, dys, dxs, from, to);
                case GELU_ERF -> (from, to) -> geluErfGradF32(xs, dys, dxs, from, to);
                case SQUARED_RELU -> (from, to) -> squaredReluGradF32(xs, dys, dxs, from, to);
            });
            return;
        }
        Blocks.run(threads, x.numel(), (from, len, xs, dys, dxs) -> {
            FloatRows.load(x, from, xs, 0, len);
            FloatRows.load(dy, from, dys, 0, len);
            int i = 0;
            if (vector) {
                for (int bound = S.loopBound(len); i < bound; i += S.length()) {
                    gradient(act, FloatVector.fromArray(S, xs, i)).mul(FloatVector.fromArray(S, dys, i)).intoArray(dxs, i);
                }
            }
            for (; i < len; i++) {
                dxs[i] = dys[i] * gradient(act, xs[i]);
            }
            FloatRows.store(dxs, 0, dx, from, len);
        });
    }

    private static FloatVector apply(Kind act, FloatVector v) {
        return switch (act) {
            case GELU_TANH -> geluTanh(v);
            case GELU_ERF -> geluErf(v);
            case SQUARED_RELU -> squaredRelu(v);
        };
    }

    private static float apply(Kind act, float v) {
        return switch (act) {
            case GELU_TANH -> geluTanh(v);
            case GELU_ERF -> geluErf(v);
            case SQUARED_RELU -> squaredRelu(v);
        };
    }

    private static FloatVector gradient(Kind act, FloatVector v) {
        return switch (act) {
            case GELU_TANH -> geluTanhGrad(v);
            case GELU_ERF -> geluErfGrad(v);
            case SQUARED_RELU -> squaredReluGrad(v);
        };
    }

    private static float gradient(Kind act, float v) {
        return switch (act) {
            case GELU_TANH -> geluTanhGrad(v);
            case GELU_ERF -> geluErfGrad(v);
            case SQUARED_RELU -> squaredReluGrad(v);
        };
    }

    // F32 tensors are read and written in place, one loop per variant: the block-copy path compiles the
    // variants, the 16-bit loads and stores and the scalar tail into one method, past C2's node budget,
    // and the vector exp then ran in the Vector API's Java fallback (the backward at a third of its speed).
    // Same arithmetic per element as the block path: the scalar tail is the tensor's last n % 16 elements.

    @FunctionalInterface
    private interface Range {
        void run(long from, long to);
    }

    /** Elements {@code [0, n)} in ranges of whole {@link Blocks#SIZE} blocks over the threads. */
    private void forRanges(long n, Range body) {
        threads.parallelFor((n + Blocks.SIZE - 1) / Blocks.SIZE, 2,
                (b0, b1) -> body.run(b0 * Blocks.SIZE, Math.min(n, b1 * Blocks.SIZE)));
    }

    private static void geluTanhF32(MemorySegment xs, MemorySegment ys, long from, long to) {
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            geluTanh(FloatVector.fromMemorySegment(S, xs, i * Float.BYTES, LE)).intoMemorySegment(ys, i * Float.BYTES, LE);
        }
        for (; i < to; i++) {
            ys.setAtIndex(F32, i, geluTanh(xs.getAtIndex(F32, i)));
        }
    }

    private static void geluErfF32(MemorySegment xs, MemorySegment ys, long from, long to) {
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            geluErf(FloatVector.fromMemorySegment(S, xs, i * Float.BYTES, LE)).intoMemorySegment(ys, i * Float.BYTES, LE);
        }
        for (; i < to; i++) {
            ys.setAtIndex(F32, i, geluErf(xs.getAtIndex(F32, i)));
        }
    }

    private static void geluTanhGradF32(MemorySegment xs, MemorySegment dys, MemorySegment dxs, long from, long to) {
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            long at = i * Float.BYTES;
            geluTanhGrad(FloatVector.fromMemorySegment(S, xs, at, LE))
                    .mul(FloatVector.fromMemorySegment(S, dys, at, LE)).intoMemorySegment(dxs, at, LE);
        }
        for (; i < to; i++) {
            dxs.setAtIndex(F32, i, dys.getAtIndex(F32, i) * geluTanhGrad(xs.getAtIndex(F32, i)));
        }
    }

    private static void geluErfGradF32(MemorySegment xs, MemorySegment dys, MemorySegment dxs, long from, long to) {
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            long at = i * Float.BYTES;
            geluErfGrad(FloatVector.fromMemorySegment(S, xs, at, LE))
                    .mul(FloatVector.fromMemorySegment(S, dys, at, LE)).intoMemorySegment(dxs, at, LE);
        }
        for (; i < to; i++) {
            dxs.setAtIndex(F32, i, dys.getAtIndex(F32, i) * geluErfGrad(xs.getAtIndex(F32, i)));
        }
    }

    private static void squaredReluF32(MemorySegment xs, MemorySegment ys, long from, long to) {
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            squaredRelu(FloatVector.fromMemorySegment(S, xs, i * Float.BYTES, LE)).intoMemorySegment(ys, i * Float.BYTES, LE);
        }
        for (; i < to; i++) {
            ys.setAtIndex(F32, i, squaredRelu(xs.getAtIndex(F32, i)));
        }
    }

    private static void squaredReluGradF32(MemorySegment xs, MemorySegment dys, MemorySegment dxs, long from, long to) {
        long i = from;
        for (; i + S.length() <= to; i += S.length()) {
            long at = i * Float.BYTES;
            squaredReluGrad(FloatVector.fromMemorySegment(S, xs, at, LE))
                    .mul(FloatVector.fromMemorySegment(S, dys, at, LE)).intoMemorySegment(dxs, at, LE);
        }
        for (; i < to; i++) {
            dxs.setAtIndex(F32, i, dys.getAtIndex(F32, i) * squaredReluGrad(xs.getAtIndex(F32, i)));
        }
    }

    // relu by max: NaN stays NaN (Math.max and the lanewise MAX both propagate it), as torch.relu does.

    private static float squaredRelu(float x) {
        float r = Math.max(x, 0f);
        return r * r;
    }

    private static float squaredReluGrad(float x) {
        return 2f * Math.max(x, 0f);
    }

    private static FloatVector squaredRelu(FloatVector x) {
        FloatVector r = x.max(0f);
        return r.mul(r);
    }

    private static FloatVector squaredReluGrad(FloatVector x) {
        return x.max(0f).mul(2f);
    }

    static float geluTanh(float x) {
        float u = SQRT_2_OVER_PI * x * (1f + GELU_K * x * x);
        return 0.5f * x * (1f + (float) Math.tanh(u));
    }

    static float geluTanhGrad(float x) {
        float x2 = x * x;
        float t = (float) Math.tanh(SQRT_2_OVER_PI * x * (1f + GELU_K * x2));
        float dudx = SQRT_2_OVER_PI * (1f + 3f * GELU_K * x2);
        return 0.5f * (1f + t) + 0.5f * x * (1f - t * t) * dudx;
    }

    static float geluErf(float x) {
        return 0.5f * x * erfc(-x * INV_SQRT_2);
    }

    static float geluErfGrad(float x) {
        return 0.5f * erfc(-x * INV_SQRT_2) + x * INV_SQRT_2PI * (float) Math.exp(-0.5f * x * x);
    }

    // 0.5 x (1 + tanh(u)) = x sigmoid(2u): one exp and one division, few enough vector nodes that C2
    // inlines the whole loop (the tanh form crossed its node budget and boxed vectors on the heap).

    private static FloatVector geluTanh(FloatVector x) {
        return x.mul(sigmoidOfTwiceU(x));
    }

    /** d/dx [x s] with s = sigmoid(2u): s + 2 x s (1 - s) du/dx (= 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx). */
    private static FloatVector geluTanhGrad(FloatVector x) {
        FloatVector s = sigmoidOfTwiceU(x);
        FloatVector dudx = x.mul(x).mul(3f * GELU_K).add(1f).mul(SQRT_2_OVER_PI);
        return x.add(x).mul(s).mul(s.neg().add(1f)).mul(dudx).add(s);
    }

    /** {@code 1 / (1 + exp(-2u))}, {@code u = sqrt(2/pi) (x + 0.044715 x^3)}. */
    private static FloatVector sigmoidOfTwiceU(FloatVector x) {
        FloatVector twoU = x.mul(2f * SQRT_2_OVER_PI).mul(x.mul(x).mul(GELU_K).add(1f));
        FloatVector denominator = LaneMath.exp(twoU.neg()).add(1f);
        return denominator.broadcast(1f).div(denominator);
    }

    private static FloatVector geluErf(FloatVector x) {
        return x.mul(0.5f).mul(erfc(x.mul(-INV_SQRT_2)));
    }

    private static FloatVector geluErfGrad(FloatVector x) {
        FloatVector pdf = LaneMath.exp(x.mul(x).mul(-0.5f)).mul(INV_SQRT_2PI);
        return erfc(x.mul(-INV_SQRT_2)).mul(0.5f).add(x.mul(pdf));
    }

    /** Complementary error function, relative error below 1.2e-7 (Numerical Recipes' erfcc). */
    static float erfc(float z) {
        float a = Math.abs(z);
        float t = 1f / (1f + 0.5f * a);
        float ans = t * (float) Math.exp(-a * a + erfcPoly(t));
        return z >= 0 ? ans : 2f - ans;
    }

    private static float erfcPoly(float t) {
        return -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f
                + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
    }

    private static FloatVector erfc(FloatVector z) {
        FloatVector a = z.abs();
        FloatVector t = a.mul(0.5f).add(1f);
        t = t.broadcast(1f).div(t);
        FloatVector p = t.mul(0.17087277f).add(-0.82215223f);
        p = p.mul(t).add(1.48851587f);
        p = p.mul(t).add(-1.13520398f);
        p = p.mul(t).add(0.27886807f);
        p = p.mul(t).add(-0.18628806f);
        p = p.mul(t).add(0.09678418f);
        p = p.mul(t).add(0.37409196f);
        p = p.mul(t).add(1.00002368f);
        p = p.mul(t).add(-1.26551223f);
        FloatVector ans = t.mul(LaneMath.exp(p.sub(a.mul(a))));
        VectorMask<Float> negative = z.compare(VectorOperators.LT, 0f);
        return ans.blend(ans.neg().add(2f), negative);
    }

    // ------------------------------------------------------------------ swiglu

    /** x {@code [rows, 2f]} -> y {@code [rows, f]}: {@code y = silu(x[:, :f]) * x[:, f:]}. */
    void swigluForward(Tensor x, Tensor y, int f) {
        long rows = f == 0 ? 0 : y.numel() / f;
        threads.parallelFor(rows, Math.max(1, Blocks.SIZE / Math.max(f, 1)), (r0, r1) -> {
            float[] in = new float[2 * f];
            float[] out = new float[f];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(x, r * 2 * f, in, 0, 2 * f);
                int i = 0;
                if (vector) {
                    for (int bound = S.loopBound(f); i < bound; i += S.length()) {
                        FloatVector a = FloatVector.fromArray(S, in, i);
                        FloatVector b = FloatVector.fromArray(S, in, f + i);
                        a.mul(sigmoid(a)).mul(b).intoArray(out, i);
                    }
                }
                for (; i < f; i++) {
                    float a = in[i];
                    out[i] = a * sigmoid(a) * in[f + i];
                }
                FloatRows.store(out, 0, y, r * f, f);
            }
        });
    }

    void swigluBackward(Tensor x, Tensor dy, Tensor dx, int f) {
        long rows = f == 0 ? 0 : dy.numel() / f;
        threads.parallelFor(rows, Math.max(1, Blocks.SIZE / Math.max(f, 1)), (r0, r1) -> {
            float[] in = new float[2 * f];
            float[] g = new float[f];
            float[] out = new float[2 * f];
            for (long r = r0; r < r1; r++) {
                FloatRows.load(x, r * 2 * f, in, 0, 2 * f);
                FloatRows.load(dy, r * f, g, 0, f);
                int i = 0;
                if (vector) {
                    for (int bound = S.loopBound(f); i < bound; i += S.length()) {
                        FloatVector a = FloatVector.fromArray(S, in, i);
                        FloatVector b = FloatVector.fromArray(S, in, f + i);
                        FloatVector d = FloatVector.fromArray(S, g, i);
                        FloatVector s = sigmoid(a);
                        FloatVector silu = a.mul(s);
                        // d silu / da = s * (1 + a * (1 - s))
                        FloatVector dsilu = s.mul(a.mul(s.neg().add(1f)).add(1f));
                        d.mul(b).mul(dsilu).intoArray(out, i);
                        d.mul(silu).intoArray(out, f + i);
                    }
                }
                for (; i < f; i++) {
                    float a = in[i];
                    float s = sigmoid(a);
                    out[i] = g[i] * in[f + i] * s * (1f + a * (1f - s));
                    out[f + i] = g[i] * a * s;
                }
                FloatRows.store(out, 0, dx, r * 2 * f, 2 * f);
            }
        });
    }

    static float sigmoid(float a) {
        return 1f / (1f + (float) Math.exp(-a));
    }

    private static FloatVector sigmoid(FloatVector a) {
        FloatVector e = LaneMath.exp(a.neg()).add(1f);
        return e.broadcast(1f).div(e);
    }

    // ------------------------------------------------------------------ dropout

    /**
     * {@code out = in * keep / (1 - p)} with the Philox mask of {@code (seed, offset + i)};
     * forward and backward are the same map (see {@link Philox} for the definition).
     */
    void dropout(Tensor in, Tensor out, float p, long seed, long offset) {
        float scale = 1f / (1f - p);
        Blocks.run(threads, in.numel(), (from, len, xs, unused1, unused2) -> {
            FloatRows.load(in, from, xs, 0, len);
            Philox.applyDropout(seed, offset, from, xs, len, p, scale);
            FloatRows.store(xs, 0, out, from, len);
        });
    }
}
