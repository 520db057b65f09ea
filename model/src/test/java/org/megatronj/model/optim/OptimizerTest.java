package org.megatronj.model.optim;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.Parameter;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Optimizers against their formulas in double, the schedule against Megatron's values, clipping, loss scaling. */
class OptimizerTest {
    private static Backend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static Parameter param(TensorArena arena, String name, int n, boolean decay, long seed) {
        Random r = new Random(seed);
        Tensor data = arena.allocate(DType.F32, n);
        Tensor grad = arena.allocate(DType.F32, n);
        for (int i = 0; i < n; i++) {
            data.setFloat(i, (float) r.nextGaussian());
        }
        return new Parameter(name, data, grad, decay);
    }

    private static void randomGrad(Parameter p, Random r) {
        for (int i = 0; i < p.numel(); i++) {
            p.grad().setFloat(i, (float) r.nextGaussian());
        }
    }

    @Test
    void adamWFollowsFusedAdamInAdamWMode() {
        try (TensorArena arena = TensorArena.named("test")) {
            Parameter w = param(arena, "w", 37, true, 1);
            Parameter b = param(arena, "b", 5, false, 2);
            List<Parameter> params = List.of(w, b);
            double[][] p = {toDouble(w.data()), toDouble(b.data())};
            double[][] m = {new double[37], new double[5]};
            double[][] v = {new double[37], new double[5]};
            float b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f;
            Random r = new Random(3);
            try (AdamW adam = new AdamW(params, backend, b1, b2, eps, wd)) {
                for (int step = 1; step <= 4; step++) {
                    float lr = 1e-2f * step;
                    for (int k = 0; k < 2; k++) {
                        Parameter q = params.get(k);
                        randomGrad(q, r);
                        double[] g = toDouble(q.grad());
                        double decay = q.weightDecay() ? wd : 0;
                        for (int i = 0; i < g.length; i++) {
                            m[k][i] = b1 * m[k][i] + (1 - b1) * g[i];
                            v[k][i] = b2 * v[k][i] + (1 - b2) * g[i] * g[i];
                            double mHat = m[k][i] / (1 - Math.pow(b1, step));
                            double vHat = v[k][i] / (1 - Math.pow(b2, step));
                            p[k][i] -= lr * (mHat / (Math.sqrt(vHat) + eps) + decay * p[k][i]);
                        }
                    }
                    adam.step(lr);
                }
                assertEquals(4, adam.stepCount());
                assertEquals(4, adam.stateTensors().size());
                assertClose(p[0], w.data(), 1e-5);
                assertClose(p[1], b.data(), 1e-5);
                assertClose(m[0], adam.stateTensors().get("w.exp_avg"), 1e-5);
            }
        }
    }

    @Test
    void sgdWithMomentumFollowsTorch() {
        try (TensorArena arena = TensorArena.named("test")) {
            Parameter w = param(arena, "w", 11, true, 4);
            double[] p = toDouble(w.data());
            double[] buf = new double[11];
            float momentum = 0.9f, wd = 0.05f;
            Random r = new Random(5);
            try (Sgd sgd = new Sgd(List.of(w), backend, momentum, wd)) {
                for (int step = 0; step < 3; step++) {
                    float lr = 0.1f;
                    randomGrad(w, r);
                    double[] g = toDouble(w.grad());
                    for (int i = 0; i < p.length; i++) {
                        double d = g[i] + wd * p[i];
                        buf[i] = step == 0 ? d : momentum * buf[i] + d;
                        p[i] -= lr * buf[i];
                    }
                    sgd.step(lr);
                }
                assertClose(p, w.data(), 1e-5);
                assertClose(buf, sgd.stateTensors().get("w.momentum_buffer"), 1e-5);
            }
            double[] plain = toDouble(w.data());
            try (Sgd sgd = new Sgd(List.of(w), backend, 0f, wd)) {
                randomGrad(w, r);
                double[] g = toDouble(w.grad());
                for (int i = 0; i < plain.length; i++) {
                    plain[i] -= 0.1 * (g[i] + wd * plain[i]);
                }
                sgd.step(0.1f);
                assertClose(plain, w.data(), 1e-5);
            }
        }
    }

    @Test
    void clippingUsesTheGlobalNorm() {
        try (TensorArena arena = TensorArena.named("test")) {
            Parameter a = param(arena, "a", 3, true, 1);
            Parameter b = param(arena, "b", 2, true, 1);
            a.grad().copyFrom(new float[] {3, 0, 0});
            b.grad().copyFrom(new float[] {0, 4});
            List<Parameter> params = List.of(a, b);
            assertEquals(5.0, GradClipping.globalNorm(params, backend), 1e-12);
            assertEquals(5.0, GradClipping.clip(params, backend, 10.0), 1e-12);   // below the limit: unchanged
            assertEquals(3f, a.grad().getFloat(0));
            assertEquals(5.0, GradClipping.clip(params, backend, 1.0), 1e-12);
            assertEquals(3.0 / (5 + 1e-6), a.grad().getFloat(0), 1e-6);
            assertEquals(4.0 / (5 + 1e-6), b.grad().getFloat(1), 1e-6);
            assertEquals(1.0, GradClipping.globalNorm(params, backend), 1e-6);
        }
    }

    @Test
    void dynamicLossScalerHasWindowAndHysteresis() {
        DynamicLossScaler s = new DynamicLossScaler(1024, 256, 3, 2);
        s.update(true);
        assertEquals(1024, s.scale());          // first overflow absorbed by hysteresis
        s.update(true);
        assertEquals(512, s.scale());
        s.update(true);
        assertEquals(256, s.scale());           // hysteresis stays spent until a growth refills it
        s.update(true);
        assertEquals(256, s.scale());           // min scale
        s.update(false);
        s.update(false);
        assertEquals(256, s.scale());
        s.update(false);
        assertEquals(512, s.scale());           // a window of clean steps doubles
        s.update(true);
        assertEquals(512, s.scale());           // hysteresis refilled by the growth
        s.update(false);
        s.update(false);
        s.update(true);                         // the overflow resets the growth count
        assertEquals(256, s.scale());
        DynamicLossScaler copy = DynamicLossScaler.withDefaults();
        copy.restore(s.state());
        assertEquals(s.state(), copy.state());
        assertEquals(Math.pow(2, 32), DynamicLossScaler.withDefaults().scale());
    }

    private static double[] toDouble(Tensor t) {
        float[] f = t.toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private static void assertClose(double[] expected, Tensor actual, double tolerance) {
        float[] a = actual.toFloatArray();
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], a[i], tolerance * Math.max(1, Math.abs(expected[i])), "element " + i);
        }
    }
}
