package org.megatronj.memory.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

/**
 * The fused linear ops and multi-tensor AdamW on the CPU are, bit for bit, the compositions the
 * layers called before (gemm, biasAdd, gelu, biasBackward; one adamW per tensor; scale, AdamW,
 * cast), in every compute dtype; bad arguments name the op and what it expected.
 */
class LinearOpsTest {
    private final CpuBackend backend = OpTesting.vector();
    private final Random rnd = OpTesting.random(41);

    private Tensor random(TensorArena arena, DType dt, long... shape) {
        Tensor t = arena.allocate(dt, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, rnd.nextFloat() * 4 - 2);
        }
        return t;
    }

    /** Parameters, gradients and Adam moments of the given sizes (exp_avg_sq never negative). */
    private record AdamState(List<Tensor> p, List<Tensor> g, List<Tensor> m, List<Tensor> v) {
    }

    private AdamState adamState(TensorArena arena, long[] sizes) {
        AdamState s = new AdamState(new ArrayList<>(), new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        for (long size : sizes) {
            s.p().add(random(arena, DType.F32, size));
            s.g().add(random(arena, DType.F32, size));
            s.m().add(random(arena, DType.F32, size));
            Tensor v = random(arena, DType.F32, size);
            for (long i = 0; i < size; i++) {
                v.setFloat(i, Math.abs(v.getFloat(i)));
            }
            s.v().add(v);
        }
        return s;
    }

    private static List<Tensor> copies(TensorArena arena, List<Tensor> ts) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : ts) {
            out.add(copy(arena, t));
        }
        return out;
    }

    private static Tensor copy(TensorArena arena, Tensor t) {
        Tensor c = arena.allocate(t.dtype(), t.shape());
        c.segment().copyFrom(t.segment());
        return c;
    }

    private static void assertSameBits(String what, Tensor expected, Tensor actual) {
        assertArrayEquals(expected.toFloatArray(), actual.toFloatArray(), what);
    }

    private void activationForward(Activation act, Tensor x, Tensor y) {
        if (act == Activation.SQUARED_RELU) {
            backend.squaredReluForward(x, y);
        } else {
            backend.geluForward(x, y, act == Activation.GELU_TANH);
        }
    }

    private void activationBackward(Activation act, Tensor x, Tensor dy, Tensor dx) {
        if (act == Activation.SQUARED_RELU) {
            backend.squaredReluBackward(x, dy, dx);
        } else {
            backend.geluBackward(x, dy, dx, act == Activation.GELU_TANH);
        }
    }

    @Test
    void linearOpsAreTheOldCompositionBitForBit() {
        for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            for (Activation act : Activation.values()) {
                try (TensorArena arena = new TensorArena("linear")) {
                    long n = 37, in = 24, out = 40;
                    boolean activated = act != Activation.NONE;
                    String what = dt + " " + act;
                    Tensor x = random(arena, dt, n, in);
                    Tensor w = random(arena, dt, out, in);
                    Tensor b = random(arena, dt, out);
                    // forward
                    Tensor y = arena.allocate(dt, n, out);
                    Tensor pre = activated ? arena.allocate(dt, n, out) : null;
                    backend.linearForward(x, w, b, act, y, pre);
                    Tensor refPre = arena.allocate(dt, n, out);
                    backend.gemm(false, true, 1f, x, w, 0f, refPre);
                    backend.biasAdd(refPre, b);
                    if (activated) {
                        Tensor refY = arena.allocate(dt, n, out);
                        activationForward(act, refPre, refY);
                        assertSameBits(what + " y", refY, y);
                        assertSameBits(what + " pre", refPre, pre);
                    } else {
                        assertSameBits(what + " y", refPre, y);
                    }
                    // input gradient through the input's activation
                    Tensor dy = random(arena, dt, n, out);
                    Tensor xPre = activated ? random(arena, dt, n, in) : null;
                    Tensor dx = arena.allocate(dt, n, in);
                    backend.linearDgrad(dy, w, act, xPre, dx);
                    Tensor dAct = arena.allocate(dt, n, in);
                    backend.gemm(false, false, 1f, dy, w, 0f, dAct);
                    Tensor refDx = dAct;
                    if (activated) {
                        refDx = arena.allocate(dt, n, in);
                        activationBackward(act, xPre, dAct, refDx);
                    }
                    assertSameBits(what + " dx", refDx, dx);
                    // parameter gradients accumulate
                    Tensor dW = random(arena, DType.F32, out, in);
                    Tensor dB = random(arena, DType.F32, out);
                    Tensor refDW = copy(arena, dW);
                    Tensor refDB = copy(arena, dB);
                    backend.linearWgrad(dy, x, dW, dB);
                    backend.biasBackward(dy, refDB);
                    backend.gemm(true, false, 1f, dy, x, 1f, refDW);
                    assertSameBits(what + " dW", refDW, dW);
                    assertSameBits(what + " dB", refDB, dB);
                }
            }
        }
    }

    @Test
    void multiTensorAdamWIsOneAdamWPerTensor() {
        try (TensorArena arena = new TensorArena("adam")) {
            long[] sizes = {1, 7, 64, 1000};
            float[] decays = {0f, 0.1f, 0f, 0.01f};
            AdamState s = adamState(arena, sizes);
            List<Tensor> p = s.p(), g = s.g(), m = s.m(), v = s.v();
            List<Tensor> refP = copies(arena, p), refM = copies(arena, m), refV = copies(arena, v);
            for (long step = 1; step <= 3; step++) {
                backend.multiTensorAdamW(p, g, m, v, decays, 1e-3f, 0.9f, 0.95f, 1e-8f, step);
                for (int i = 0; i < sizes.length; i++) {
                    backend.adamW(refP.get(i), g.get(i), refM.get(i), refV.get(i), 1e-3f, 0.9f, 0.95f, 1e-8f, decays[i], step);
                }
            }
            for (int i = 0; i < sizes.length; i++) {
                assertSameBits("param " + i, refP.get(i), p.get(i));
                assertSameBits("exp_avg " + i, refM.get(i), m.get(i));
                assertSameBits("exp_avg_sq " + i, refV.get(i), v.get(i));
            }
        }
    }

    /** The CPU's fused kernels (scalar and vector), and Backend's default (for any backend) through a proxy over the CPU. */
    static Stream<Arguments> fusedAdamWCases() {
        List<Arguments> cases = new ArrayList<>();
        CpuBackend scalar = OpTesting.backends().findFirst().orElseThrow();
        Backend[][] impls = {{scalar, scalar}, {OpTesting.vector(), OpTesting.vector()},
                {defaultMultiTensorAdamW(OpTesting.vector()), OpTesting.vector()}};
        String[] names = {"cpu scalar", "cpu vector", "Backend default"};
        for (int k = 0; k < impls.length; k++) {
            for (DType copy : new DType[] {null, DType.F32, DType.BF16, DType.F16}) {
                for (float gradScale : new float[] {0.37f, 1f}) {
                    cases.add(Arguments.of(names[k], impls[k][0], impls[k][1], copy, gradScale));
                }
            }
        }
        return cases.stream();
    }

    /** {@code cpu} for every op but the fused multiTensorAdamW, which runs Backend's default method on top of it. */
    private static Backend defaultMultiTensorAdamW(CpuBackend cpu) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> method.getName().equals("multiTensorAdamW") && args.length == 12
                        ? InvocationHandler.invokeDefault(proxy, method, args)
                        : method.invoke(cpu, args));
    }

    /**
     * multiTensorAdamW with a gradient scale and compute copies is, bit for bit, scaling copies of
     * the gradients, the plain multiTensorAdamW, then a cast of each parameter into its copy, and
     * leaves the gradients as they were.
     */
    @ParameterizedTest(name = "{0}, copies {3}, gradScale {4}")
    @MethodSource("fusedAdamWCases")
    void fusedMultiTensorAdamWIsScaleStepCast(String impl, Backend fused, CpuBackend reference, DType copyType,
                                              float gradScale) {
        try (TensorArena arena = new TensorArena("adam")) {
            long[] sizes = {1, 7, 64, 1000, 4099};
            float[] decays = {0f, 0.1f, 0f, 0.01f, 0.1f};
            AdamState s = adamState(arena, sizes);
            List<Tensor> p = s.p(), g = s.g(), m = s.m(), v = s.v();
            List<Tensor> refP = copies(arena, p), refM = copies(arena, m), refV = copies(arena, v);
            List<Tensor> gBefore = copies(arena, g), copies = copyType == null ? null : new ArrayList<>();
            List<Tensor> refCopies = new ArrayList<>();
            for (long size : sizes) {
                if (copies != null) {
                    copies.add(arena.allocate(copyType, size));
                    refCopies.add(arena.allocate(copyType, size));
                }
            }
            for (long step = 1; step <= 3; step++) {
                fused.multiTensorAdamW(p, g, m, v, decays, 1e-3f, 0.9f, 0.95f, 1e-8f, step, gradScale, copies);
                List<Tensor> scaled = new ArrayList<>();
                for (Tensor gi : g) {
                    scaled.add(copy(arena, gi));
                    reference.scale(scaled.getLast(), gradScale);
                }
                reference.multiTensorAdamW(refP, scaled, refM, refV, decays, 1e-3f, 0.9f, 0.95f, 1e-8f, step);
                for (int i = 0; copies != null && i < sizes.length; i++) {
                    reference.cast(refP.get(i), refCopies.get(i));
                }
            }
            for (int i = 0; i < sizes.length; i++) {
                String at = impl + " [" + i + "] ";
                assertSameBits(at + "param", refP.get(i), p.get(i));
                assertSameBits(at + "exp_avg", refM.get(i), m.get(i));
                assertSameBits(at + "exp_avg_sq", refV.get(i), v.get(i));
                assertSameBits(at + "grad untouched", gBefore.get(i), g.get(i));
                if (copies != null) {
                    assertSameBits(at + "compute copy", refCopies.get(i), copies.get(i));
                }
            }
        }
    }

    private static void assertMessage(Executable call, String... fragments) {
        TensorException e = assertThrows(TensorException.class, call);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message '" + e.getMessage() + "' lacks '" + f + "'");
        }
    }

    @Test
    void badArgumentsNameTheOpAndTheExpectation() {
        try (TensorArena arena = new TensorArena("errors")) {
            Tensor x = arena.allocate(DType.F32, 4, 8);
            Tensor w = arena.allocate(DType.F32, 6, 8);
            Tensor wrongW = arena.allocate(DType.F32, 6, 9);
            Tensor y = arena.allocate(DType.F32, 4, 6);
            Tensor bias5 = arena.allocate(DType.F32, 5);
            assertMessage(() -> backend.linearForward(x, wrongW, null, Activation.NONE, y, null),
                    "linearForward:", "[6, 9]", "expected x [n, in], weight [out, in], y [n, out]");
            assertMessage(() -> backend.linearForward(x, w, bias5, Activation.NONE, y, null),
                    "linearForward:", "bias", "[5]", "expected [6]");
            assertMessage(() -> backend.linearForward(x, w, null, Activation.GELU_TANH, y, null),
                    "linearForward:", "GELU_TANH needs preActivation");
            assertMessage(() -> backend.linearForward(x, w, null, Activation.NONE, y, y),
                    "linearForward:", "without an activation");
            Tensor bf16Pre = arena.allocate(DType.BF16, 4, 6);
            assertMessage(() -> backend.linearForward(x, w, null, Activation.GELU_ERF, y, bf16Pre),
                    "linearForward:", "preActivation is BF16", "same dtype");
            Tensor dx = arena.allocate(DType.F32, 4, 8);
            assertMessage(() -> backend.linearDgrad(y, wrongW, Activation.NONE, null, dx),
                    "linearDgrad:", "expected dy [n, out], weight [out, in], dx [n, in]");
            Tensor bf16DW = arena.allocate(DType.BF16, 6, 8);
            assertMessage(() -> backend.linearWgrad(y, x, bf16DW, null), "linearWgrad:", "dWeight", "expected F32");
            Tensor p = arena.allocate(DType.F32, 3);
            assertMessage(() -> backend.multiTensorAdamW(List.of(p), List.of(p), List.of(p), List.of(), new float[1],
                    1e-3f, 0.9f, 0.95f, 1e-8f, 1), "multiTensorAdamW:", "expected equal counts");
            Tensor p4 = arena.allocate(DType.F32, 4);
            assertMessage(() -> backend.multiTensorAdamW(List.of(p), List.of(p), List.of(p), List.of(p), new float[1],
                    1e-3f, 0.9f, 0.95f, 1e-8f, 1, 0.5f, List.of(p4)), "multiTensorAdamW:", "computeCopies[0]",
                    "expected equal counts");
            Tensor ids = arena.allocate(DType.I32, 3);
            assertMessage(() -> backend.multiTensorAdamW(List.of(p), List.of(p), List.of(p), List.of(p), new float[1],
                    1e-3f, 0.9f, 0.95f, 1e-8f, 1, 0.5f, List.of(ids)), "multiTensorAdamW:", "computeCopies[0] is I32",
                    "expected F32, BF16 or F16");
        }
    }
}
