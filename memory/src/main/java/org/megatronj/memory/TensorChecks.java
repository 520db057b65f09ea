package org.megatronj.memory;

import java.util.Arrays;
import java.util.List;

/**
 * Argument checks every backend shares. Each failure names the op, what it was given (shapes,
 * dtypes) and what it expected, so a bad call is fixed from the message alone. Backends add
 * their own device checks (host memory for the CPU, device memory for CUDA) on top.
 */
public final class TensorChecks {
    private TensorChecks() {
    }

    public static TensorException fail(String op, String message) {
        return new TensorException(op + ": " + message);
    }

    /** Non-null and not freed. */
    public static Tensor alive(String op, String name, Tensor t) {
        if (t == null) {
            throw fail(op, name + " is null");
        }
        if (!t.isAlive()) {
            String arena = t.arena() == null ? "its memory" : "arena '" + t.arena().name() + "'";
            throw fail(op, name + " " + t + " was freed (" + arena + " is closed)");
        }
        return t;
    }

    public static void sameShape(String op, String nameA, Tensor a, String nameB, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw fail(op, nameA + " has shape " + Tensor.shapeString(a.shape()) + " but " + nameB + " has shape "
                    + Tensor.shapeString(b.shape()) + "; expected equal shapes");
        }
    }

    public static void sameNumel(String op, String nameA, Tensor a, String nameB, Tensor b) {
        if (a.numel() != b.numel()) {
            throw fail(op, nameA + " " + Tensor.shapeString(a.shape()) + " has " + a.numel() + " elements but "
                    + nameB + " " + Tensor.shapeString(b.shape()) + " has " + b.numel() + "; expected equal counts");
        }
    }

    public static void shape(String op, String name, Tensor t, long... expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + Tensor.shapeString(expected));
        }
    }

    public static void numel(String op, String name, Tensor t, long expected, String what) {
        if (t.numel() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + " (" + t.numel()
                    + " elements); expected " + expected + " elements (" + what + ")");
        }
    }

    public static void rank(String op, String name, Tensor t, int expected, String layout) {
        if (t.rank() != expected) {
            throw fail(op, name + " has shape " + Tensor.shapeString(t.shape()) + "; expected " + expected + "-D " + layout);
        }
    }

    /** {@code t} has a floating point dtype (F32, BF16 or F16). */
    public static Tensor floatingDtype(String op, String name, Tensor t) {
        if (!t.dtype().isFloatingPoint()) {
            throw fail(op, name + " is " + t.dtype() + Tensor.shapeString(t.shape()) + "; expected F32, BF16 or F16");
        }
        return t;
    }

    public static Tensor dtypeIs(String op, String name, Tensor t, DType expected) {
        if (t.dtype() != expected) {
            throw fail(op, name + " is " + t.dtype() + Tensor.shapeString(t.shape()) + "; expected " + expected);
        }
        return t;
    }

    // ------------------------------------------------------------------ fused linear layers and multi-tensor ops

    /** {@link Backend#linearForward}'s arguments: x [n, in], weight [out, in], bias [out], y and preActivation [n, out]. */
    public static void linearForward(Tensor x, Tensor weight, Tensor bias, Backend.Activation activation, Tensor y,
                                     Tensor preActivation) {
        String op = "linearForward";
        linearOperands(op, "x", x, "weight", weight);
        floatingDtype(op, "y", alive(op, "y", y));
        rank(op, "y", y, 2, "[n, out]");
        long n = x.dim(0);
        long out = weight.dim(0);
        if (x.dim(1) != weight.dim(1) || y.dim(0) != n || y.dim(1) != out) {
            throw fail(op, "x " + Tensor.shapeString(x.shape()) + ", weight " + Tensor.shapeString(weight.shape())
                    + " and y " + Tensor.shapeString(y.shape()) + "; expected x [n, in], weight [out, in], y [n, out]");
        }
        outputDtype(op, "y", y, x);
        if (bias != null) {
            floatingDtype(op, "bias", alive(op, "bias", bias));
            shape(op, "bias", bias, out);
        }
        activationInput(op, activation, preActivation, y, "y");
    }

    /** {@link Backend#linearForwardAdd}'s arguments: those of linearForward, and residual [n, out] of y's dtype, not y. */
    public static void linearForwardAdd(Tensor x, Tensor weight, Tensor bias, Tensor residual, Tensor y) {
        String op = "linearForwardAdd";
        linearForward(x, weight, bias, Backend.Activation.NONE, y, null);
        alive(op, "residual", residual);
        sameShape(op, "y", y, "residual", residual);
        if (residual.dtype() != y.dtype()) {
            throw fail(op, "residual is " + residual.dtype() + " but y is " + y.dtype() + "; expected the same dtype");
        }
        if (residual.address() == y.address()) {
            throw fail(op, "residual and y are the same tensor; expected distinct ones (y is written before the add)");
        }
    }

    /** {@link Backend#linearDgrad}'s arguments: dy [n, out], weight [out, in], preActivation and dx [n, in]. */
    public static void linearDgrad(Tensor dy, Tensor weight, Backend.Activation activation, Tensor preActivation, Tensor dx) {
        String op = "linearDgrad";
        linearOperands(op, "dy", dy, "weight", weight);
        floatingDtype(op, "dx", alive(op, "dx", dx));
        rank(op, "dx", dx, 2, "[n, in]");
        if (dy.dim(1) != weight.dim(0) || dx.dim(0) != dy.dim(0) || dx.dim(1) != weight.dim(1)) {
            throw fail(op, "dy " + Tensor.shapeString(dy.shape()) + ", weight " + Tensor.shapeString(weight.shape())
                    + " and dx " + Tensor.shapeString(dx.shape()) + "; expected dy [n, out], weight [out, in], dx [n, in]");
        }
        outputDtype(op, "dx", dx, dy);
        activationInput(op, activation, preActivation, dx, "dx");
    }

    /** {@link Backend#linearWgrad}'s arguments: dy [n, out], x [n, in], dWeight [out, in] F32, dBias [out] F32. */
    public static void linearWgrad(Tensor dy, Tensor x, Tensor dWeight, Tensor dBias) {
        String op = "linearWgrad";
        linearOperands(op, "dy", dy, "x", x);
        dtypeIs(op, "dWeight", alive(op, "dWeight", dWeight), DType.F32);
        if (dy.dim(0) != x.dim(0) || !Arrays.equals(dWeight.shape(), new long[] {dy.dim(1), x.dim(1)})) {
            throw fail(op, "dy " + Tensor.shapeString(dy.shape()) + ", x " + Tensor.shapeString(x.shape())
                    + " and dWeight " + Tensor.shapeString(dWeight.shape())
                    + "; expected dy [n, out], x [n, in], dWeight [out, in]");
        }
        if (dBias != null) {
            dtypeIs(op, "dBias", alive(op, "dBias", dBias), DType.F32);
            shape(op, "dBias", dBias, dy.dim(1));
        }
    }

    /** Two 2-D floating point operands of one dtype. */
    private static void linearOperands(String op, String nameA, Tensor a, String nameB, Tensor b) {
        floatingDtype(op, nameA, alive(op, nameA, a));
        floatingDtype(op, nameB, alive(op, nameB, b));
        rank(op, nameA, a, 2, "matrix");
        rank(op, nameB, b, 2, "matrix");
        if (a.dtype() != b.dtype()) {
            throw fail(op, nameA + " is " + a.dtype() + " but " + nameB + " is " + b.dtype() + "; expected one input dtype");
        }
    }

    private static void outputDtype(String op, String name, Tensor out, Tensor in) {
        if (out.dtype() != DType.F32 && out.dtype() != in.dtype()) {
            throw fail(op, name + " is " + out.dtype() + "; expected F32 or the input dtype " + in.dtype());
        }
    }

    /** preActivation is given exactly when there is an activation, shaped and typed as {@code like}. */
    private static void activationInput(String op, Backend.Activation activation, Tensor preActivation, Tensor like,
                                        String likeName) {
        if (activation == null) {
            throw fail(op, "activation is null; expected one of " + Arrays.toString(Backend.Activation.values()));
        }
        if (activation == Backend.Activation.NONE) {
            if (preActivation != null) {
                throw fail(op, "preActivation " + preActivation + " given without an activation; expected null with NONE");
            }
            return;
        }
        if (preActivation == null) {
            throw fail(op, "activation " + activation + " needs preActivation (shaped as " + likeName + " "
                    + Tensor.shapeString(like.shape()) + ")");
        }
        alive(op, "preActivation", preActivation);
        sameShape(op, "preActivation", preActivation, likeName, like);
        if (preActivation.dtype() != like.dtype()) {
            throw fail(op, "preActivation is " + preActivation.dtype() + " but " + likeName + " is " + like.dtype()
                    + "; expected the same dtype");
        }
    }

    /**
     * {@link Backend#multiTensorAdamW}'s lists: equal lengths, and each tensor's grad, moments and
     * compute copy (when {@code computeCopies} is not null) of its size.
     */
    public static void multiTensorAdamW(List<Tensor> params, List<Tensor> grads, List<Tensor> expAvgs,
                                        List<Tensor> expAvgSqs, float[] weightDecays, long step,
                                        List<Tensor> computeCopies) {
        String op = "multiTensorAdamW";
        int n = params.size();
        if (grads.size() != n || expAvgs.size() != n || expAvgSqs.size() != n || weightDecays.length != n) {
            throw fail(op, params.size() + " params, " + grads.size() + " grads, " + expAvgs.size() + " expAvgs, "
                    + expAvgSqs.size() + " expAvgSqs and " + weightDecays.length + " weight decays; expected equal counts");
        }
        if (step < 1) {
            throw fail(op, "step = " + step + "; expected step >= 1 (steps count from 1)");
        }
        for (int i = 0; i < n; i++) {
            String at = "[" + i + "]";
            dtypeIs(op, "params" + at, alive(op, "params" + at, params.get(i)), DType.F32);
            dtypeIs(op, "grads" + at, alive(op, "grads" + at, grads.get(i)), DType.F32);
            dtypeIs(op, "expAvgs" + at, alive(op, "expAvgs" + at, expAvgs.get(i)), DType.F32);
            dtypeIs(op, "expAvgSqs" + at, alive(op, "expAvgSqs" + at, expAvgSqs.get(i)), DType.F32);
            sameNumel(op, "params" + at, params.get(i), "grads" + at, grads.get(i));
            sameNumel(op, "params" + at, params.get(i), "expAvgs" + at, expAvgs.get(i));
            sameNumel(op, "params" + at, params.get(i), "expAvgSqs" + at, expAvgSqs.get(i));
        }
        if (computeCopies == null) {
            return;
        }
        if (computeCopies.size() != n) {
            throw fail(op, n + " params but " + computeCopies.size() + " computeCopies; expected equal counts");
        }
        for (int i = 0; i < n; i++) {
            String name = "computeCopies[" + i + "]";
            floatingDtype(op, name, alive(op, name, computeCopies.get(i)));
            sameNumel(op, "params[" + i + "]", params.get(i), name, computeCopies.get(i));
        }
    }
}
