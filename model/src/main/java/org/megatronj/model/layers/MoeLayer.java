package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Backend.Activation;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.Parameter;
import org.megatronj.model.parallel.TensorParallelGroup;

/**
 * Megatron-core's {@code MoELayer} with its all-gather token dispatcher and {@code SequentialMLP} experts:
 * <pre>
 *   logits = x W_router^T                                    [n, E]   (TopKRouter: experts, weights, losses)
 *   rows   = x[token of each (token, expert) pair]           [R, h]   expert-major (permute)
 *   y_e    = fc2_e(act(fc1_e(rows_e)) * p)                   per expert on its rows (weights after the activation)
 *   out[t] = sum of y over t's rows, in expert order          [n, h]   (unpermute) + shared_experts(x)
 * </pre>
 * With tensor parallelism every rank holds its slice of every expert (expert tensor parallelism equal to the tensor
 * size, as Megatron's default): it routes all tokens of the gathered input (see {@link TopKRouter}), computes its
 * partial expert outputs and reduce-scatters their sum, which is Megatron's gather-compute-reduce-scatter of the
 * sequence-parallel shards. The router weight is replicated and each rank's gradient comes from its own sequence
 * shard (summed over the tensor ranks like the norms').
 *
 * <p>Gradients: dx is written; parameter gradients accumulate. The load-balancing and z losses' gradients enter the
 * router logits scaled by {@link #setAuxLossScale} (Megatron's {@code MoEAuxLossAutoScaler}); their values are summed
 * for the log at each backward ({@link #takeAuxLoss}, {@link #takeZLoss}).
 */
public final class MoeLayer implements FeedForward {
    private final Backend backend;
    private final MoeConfig moe;
    private final TopKRouter router;
    private final Parameter routerWeight;   // [E, h]
    private final Parameter[] fc1;          // per expert [fc1 / t, h]
    private final Parameter[] fc2;          // per expert [h, ffn / t]
    private final Mlp sharedExperts;        // null without
    private final Parameter sharedGate;     // [1, h], null without --moe-shared-expert-gate
    private final Parameter expertBias;     // [E] F32 buffer, null without --moe-router-enable-expert-bias
    private final double[] tokensPerExpert; // routed tokens since the last bias update
    private final DType dtype;
    private final boolean swiglu;
    private final Activation activation;
    private final TensorParallelGroup tp;
    private final boolean sequenceParallel;
    private final int layerNumber;          // the global layer index (0-based)
    private float auxLossScale = 1f;
    private double auxLossSum;
    private double zLossSum;

    /**
     * {@code moe}: the tensor rank's shard of the configuration ({@link MoeConfig#tensorParallelShard}); {@code
     * layerNumber}: the global index of the layer (0-based).
     */
    public MoeLayer(Backend backend, int layerNumber, MoeConfig moe, Parameter routerWeight, Parameter[] fc1, Parameter[] fc2,
                    Mlp sharedExperts, Parameter sharedGate, Parameter expertBias, boolean swiglu, Activation activation,
                    TensorParallelGroup tp, boolean sequenceParallel, DType dtype) {
        this.layerNumber = layerNumber;
        this.sharedGate = sharedGate;
        this.dtype = dtype;
        this.expertBias = expertBias;
        this.tokensPerExpert = new double[moe.numExperts()];
        this.backend = backend;
        this.moe = moe;
        this.router = new TopKRouter(moe, moe.routerDtypeFp32() ? DType.F32 : dtype);   // fp32 logits keep fp32 weights
        this.routerWeight = routerWeight;
        this.fc1 = fc1.clone();
        this.fc2 = fc2.clone();
        this.sharedExperts = sharedExperts;
        this.swiglu = swiglu;
        this.activation = activation;
        this.tp = tp;
        this.sequenceParallel = sequenceParallel;
    }

    /** The gradient scale of the auxiliary losses for the next backward: the loss scale over the micro-batches. */
    public void setAuxLossScale(float scale) {
        this.auxLossScale = scale;
    }

    /** The global index of the layer (0-based). */
    public int layerNumber() {
        return layerNumber;
    }

    /** Whether this layer has {@code --moe-router-enable-expert-bias}'s buffer. */
    public boolean hasExpertBias() {
        return expertBias != null;
    }

    /**
     * The tokens each expert received (in the backward passes since the last call, every token of the micro-batches
     * counted, each tensor rank's alike); resets them.
     */
    public double[] takeTokensPerExpert() {
        double[] out = tokensPerExpert.clone();
        java.util.Arrays.fill(tokensPerExpert, 0);
        return out;
    }

    /**
     * Megatron's {@code get_updated_expert_bias} in F32: each expert's bias moves by the update rate towards balance,
     * up when it received fewer tokens than the average of {@code counts} (the counts over every data-parallel rank),
     * down when more.
     */
    public void updateExpertBias(double[] counts) {
        float[] bias = HostTransfer.downloadFloats(backend, expertBias.data());
        float sum = 0;
        for (double c : counts) {
            sum += (float) c;
        }
        float average = sum / counts.length;
        for (int e = 0; e < bias.length; e++) {
            bias[e] += Math.signum(average - (float) counts[e]) * moe.routerBiasUpdateRate();
        }
        HostTransfer.uploadFloats(backend, bias, expertBias.data());
    }

    /** The load-balancing loss (over its coefficient) summed over the backward passes since the last call. */
    public double takeAuxLoss() {
        double v = auxLossSum;
        auxLossSum = 0;
        return v;
    }

    /** The z loss (over its coefficient) summed over the backward passes since the last call. */
    public double takeZLoss() {
        double v = zLossSum;
        zLossSum = 0;
        return v;
    }

    @Override
    public void forward(Tensor x, Tensor residual, Tensor out, LayerActivations a, Workspace ws, boolean training) {
        MoeActivations m = a.moe();
        MoeWorkspace w = ws.moe();
        int n = Math.toIntExact(x.dim(0) * x.dim(1));
        Tensor xf = flat(x);
        Tensor logits = w.logits().view(0, n);
        backend.gemm(false, true, 1f, xf, routerWeight.compute(), 0f, logits);     // [n, E]
        float[] bias = expertBias == null ? null : HostTransfer.downloadFloats(backend, expertBias.data());
        TopKRouter.Routing r = router.route(HostTransfer.downloadFloats(backend, logits), bias, n,
                sequenceParallel ? tp.size() : 1, Math.toIntExact(x.dim(1)), training);
        m.routing().routing = r;
        int rows = r.rows();
        HostTransfer.uploadInts(backend, r.rowToken(), m.rowToken().view(0, rows));
        HostTransfer.uploadFloats(backend, r.rowProb(), m.rowProb().view(0, rows));
        int[][] tokenRows = r.tokenRows();
        for (int j = 0; j < tokenRows.length; j++) {
            HostTransfer.uploadInts(backend, tokenRows[j], m.tokenRows().view((long) j * n, (long) (j + 1) * n));
        }
        backend.embeddingForward(m.rowToken().view(0, rows), xf, m.input().view(0, rows));      // permute: [R, h]
        int[] offset = r.expertOffset();
        for (int e = 0; e < fc1.length; e++) {
            if (offset[e] == offset[e + 1]) {
                continue;
            }
            long from = offset[e];
            long to = offset[e + 1];
            Tensor in = m.input().view(from, to);
            Tensor pre = m.fc1Out().view(from, to);
            Tensor act = m.actOut().view(from, to);
            if (swiglu) {
                backend.gemm(false, true, 1f, in, fc1[e].compute(), 0f, pre);
                backend.swigluForward(pre, act);
            } else if (a.recompute().moeAct()) {
                // act from the stored pre by the elementwise op that backward's refill reruns (a GPU's fused epilogue
                // would take it from the unrounded sum, which backward no longer has)
                backend.gemm(false, true, 1f, in, fc1[e].compute(), 0f, pre);
                activation.apply(backend, pre, act);
            } else {
                backend.linearForward(in, fc1[e].compute(), null, activation, act, pre);
            }
            Tensor scaled = w.scaled().view(from, to);
            backend.scaleRows(act, m.rowProb().view(from, to), scaled);            // act * p
            backend.gemm(false, true, 1f, scaled, fc2[e].compute(), 0f, w.expertOut().view(from, to));
        }
        backend.fill(w.expertOut().view(rows, rows + 1), 0f);
        Tensor combined = sequenceParallel ? w.full() : residual == null && sharedExperts == null ? out : w.full();
        unpermute(w.expertOut(), m, tokenRows.length, n, rows(combined, n), rows(w.gathered(), n));
        if (sequenceParallel) {
            tp.reduceScatterFirstDim(w.full(), sharedExperts == null ? out : w.shard());
        }
        Tensor routed = sequenceParallel ? flat(w.shard()) : rows(w.full(), n);
        if (sharedExperts != null) {
            Tensor shared = sharedGate == null ? out : m.sharedOut().view(0, out.dim(0));
            sharedExperts.forward(x, null, shared, m.sharedExpertActivations(a, x.dim(0)), ws.forSharedExperts());
            if (sharedGate != null) {
                gateForward(x, shared, out, m, w);
            }
            backend.add(routed, flat(out), flat(out));
        }
        if (residual != null) {
            backend.add(sharedExperts == null ? rows(combined, n) : flat(out), flat(residual), flat(out));
        }
    }

    /**
     * Megatron's shared expert gate: {@code out = shared * sigmoid(x_local W_gate^T)} per token of this rank (its
     * sequence shard under sequence parallelism), the sigmoid in F32 rounded to the compute dtype.
     */
    private void gateForward(Tensor x, Tensor shared, Tensor out, MoeActivations m, MoeWorkspace w) {
        Tensor xLocal = localRows(x, Math.toIntExact(flat(out).dim(0)));
        int local = Math.toIntExact(xLocal.dim(0));
        Tensor logits = w.gateLogit().view(0, local);
        backend.gemm(false, true, 1f, xLocal, sharedGate.compute(), 0f, logits);          // [local, 1]
        float[] score = HostTransfer.downloadFloats(backend, logits);
        for (int i = 0; i < score.length; i++) {
            score[i] = router.round((float) (1 / (1 + Math.exp(-score[i]))));
        }
        m.routing().gateScores = score;
        Tensor gate = m.gateScore().view(0, local);
        HostTransfer.uploadFloats(backend, score, gate);
        backend.scaleRows(flat(shared), gate, flat(out));
    }

    /** The gate's backward: the shared experts' output gradient into {@code w.dShared()}, the gate's into dGate and dx. */
    private Tensor gateBackward(Tensor dOut, Tensor x, MoeActivations m, MoeWorkspace w) {
        int local = Math.toIntExact(flat(dOut).dim(0));
        Tensor gate = m.gateScore().view(0, local);
        Tensor dShared = w.dShared().view(0, dOut.dim(0));
        Tensor dGate = w.dGate().view(0, local);
        backend.rowDot(flat(dOut), flat(m.sharedOut().view(0, dOut.dim(0))), dGate);     // d sigmoid
        backend.scaleRows(flat(dOut), gate, flat(dShared));
        float[] g = HostTransfer.downloadFloats(backend, dGate);
        float[] s = m.routing().gateScores;
        for (int i = 0; i < g.length; i++) {
            g[i] = g[i] * s[i] * (1 - s[i]);
        }
        Tensor dLogit = w.gateLogit().view(0, local);
        HostTransfer.uploadFloats(backend, g, dLogit);
        backend.linearWgrad(dLogit, localRows(x, local), sharedGate.grad(), null);
        return dShared;
    }

    /** The rows of the gathered input x that belong to this rank ({@code local} of them). */
    private Tensor localRows(Tensor x, int local) {
        int from = sequenceParallel ? tp.rank() * local : 0;
        return flat(x).view(from, from + local);
    }

    /** dst[t] = sum over slots j of src[row j of token t] (the zero row where t has no j-th row). */
    private void unpermute(Tensor src, MoeActivations m, int slots, int n, Tensor dst, Tensor scratch) {
        for (int j = 0; j < slots; j++) {
            Tensor ids = m.tokenRows().view((long) j * n, (long) (j + 1) * n);
            backend.embeddingForward(ids, src, j == 0 ? dst : scratch);
            if (j > 0) {
                backend.add(dst, scratch, dst);
            }
        }
    }

    /**
     * Megatron's "moe_act": the experts' activation outputs are shared between layers, so rerun the activation on this
     * layer's saved fc1 outputs (an elementwise op: over all rows at once gives the per-expert values). Its
     * "shared_experts": rerun the shared experts' fc1 and activation from x. Its "moe": rerun the whole layer from x.
     * ("mlp" leaves MoE layers alone.)
     */
    @Override
    public void recompute(Tensor x, LayerActivations a, Workspace ws) {
        if (a.recompute().moe()) {
            // "moe": the whole forward again (a training forward, as the one it repeats), its output to scratch that
            // the layer's backward writes only later; this refills every buffer below as well.
            forward(x, null, ws.shardA(), a, ws, true);
            return;
        }
        MoeActivations m = a.moe();
        int rows = m.routing().routing.rows();
        if (a.recompute().moeAct() && rows > 0) {
            Tensor pre = m.fc1Out().view(0, rows);   // [R, fc1]
            Tensor act = m.actOut().view(0, rows);   // [R, ffn]
            if (swiglu) {
                backend.swigluForward(pre, act);
            } else {
                activation.apply(backend, pre, act);
            }
        }
        if (a.recompute().sharedExperts() && sharedExperts != null) {
            sharedExperts.refill(x, m.sharedExpertActivations(a, x.dim(0)));
        }
    }

    @Override
    public void backward(Tensor dOut, Tensor x, Tensor dx, LayerActivations a, Workspace ws) {
        MoeActivations m = a.moe();
        MoeWorkspace w = ws.moe();
        TopKRouter.Routing r = m.routing().routing;
        int n = r.n();
        int rows = r.rows();
        auxLossSum += r.auxLoss();
        zLossSum += r.zLoss();
        for (int e = 0; e < tokensPerExpert.length; e++) {   // counted once per micro-batch, recompute or not
            tokensPerExpert[e] += r.expertOffset()[e + 1] - r.expertOffset()[e];
        }
        Tensor dFull = dOut;
        if (sequenceParallel) {
            tp.allGatherFirstDim(dOut, w.full());
            dFull = w.full();
        }
        Tensor dY = w.expertOut();
        backend.embeddingForward(m.rowToken().view(0, rows), flat(dFull), dY.view(0, rows));   // dY[row] = dOut[token]
        int[] offset = r.expertOffset();
        for (int e = 0; e < fc1.length; e++) {
            if (offset[e] == offset[e + 1]) {
                continue;
            }
            long from = offset[e];
            long to = offset[e + 1];
            Tensor dYe = dY.view(from, to);
            Tensor act = m.actOut().view(from, to);
            Tensor prob = m.rowProb().view(from, to);
            Tensor scaled = w.scaled().view(from, to);
            backend.scaleRows(act, prob, scaled);                                   // fc2's input again
            backend.linearWgrad(dYe, scaled, fc2[e].grad(), null);
            backend.gemm(false, false, 1f, dYe, fc2[e].compute(), 0f, scaled);    // d(act * p), over scaled
            backend.rowDot(scaled, act, w.dProb().view(from, to));                // dp (this rank's part)
            backend.scaleRows(scaled, prob, scaled);                                // d act
            Tensor pre = m.fc1Out().view(from, to);
            Tensor dPre = w.dFc1().view(from, to);
            if (swiglu) {
                backend.swigluBackward(pre, scaled, dPre);
            } else {
                activation.applyGradient(backend, pre, scaled, dPre);
            }
            Tensor in = m.input().view(from, to);
            backend.linearWgrad(dPre, in, fc1[e].grad(), null);
            backend.gemm(false, false, 1f, dPre, fc1[e].compute(), 0f, w.dInput().view(from, to));
        }
        backend.fill(w.dInput().view(rows, rows + 1), 0f);
        if (sharedExperts != null) {   // writes dx; the routed gradient is added below
            Tensor dShared = sharedGate == null ? dOut : gateBackward(dOut, x, m, w);
            sharedExperts.backward(dShared, x, dx, m.sharedExpertActivations(a, x.dim(0)), ws.forSharedExperts());
            if (sharedGate != null) {   // the gate logits' share of dx
                int local = Math.toIntExact(flat(dx).dim(0));
                backend.gemm(false, false, 1f, w.gateLogit().view(0, local), sharedGate.compute(), 1f, flat(dx));
            }
        }
        Tensor target = sequenceParallel || sharedExperts != null ? w.full() : dx;
        unpermute(w.dInput(), m, r.tokenRows().length, n, rows(target, n), rows(w.gathered(), n));
        if (sequenceParallel) {
            tp.reduceScatterFirstDim(w.full(), sharedExperts == null ? dx : w.shard());
        }
        if (sharedExperts != null) {
            backend.add(flat(dx), sequenceParallel ? flat(w.shard()) : rows(w.full(), n), flat(dx));
        }
        routerBackward(r, x, dx, w);
    }

    /** The router's gradients from the routing weights' and the auxiliary losses': dW_router and dx of this rank's rows. */
    private void routerBackward(TopKRouter.Routing r, Tensor x, Tensor dx, MoeWorkspace w) {
        int n = r.n();
        Tensor dProb = w.dProb().view(0, r.rows());
        if (tp.size() > 1) {
            tp.allReduceSum(dProb);
        }
        int local = sequenceParallel ? n / tp.size() : n;
        int from = sequenceParallel ? tp.rank() * local : 0;
        float[] dLogits = router.backward(r, HostTransfer.downloadFloats(backend, dProb), auxLossScale, from, from + local);
        Tensor dl = w.logits().view(0, local);
        HostTransfer.uploadFloats(backend, dLogits, dl);
        Tensor xLocal = flat(x).view(from, from + local);
        if (w.routerX() == null) {
            backend.linearWgrad(dl, xLocal, routerWeight.grad(), null);
            backend.gemm(false, false, 1f, dl, routerWeight.compute(), 1f, flat(dx));
            return;
        }
        // --moe-router-dtype fp32 (Megatron's RouterGatingLinearFunction): the GEMMs in F32 on the 16-bit values, the
        // input gradient cast to the compute dtype before it joins dx
        Tensor x32 = w.routerX().view(0, local);
        backend.cast(xLocal, x32);
        backend.linearWgrad(dl, x32, routerWeight.grad(), null);
        backend.cast(routerWeight.compute(), w.routerW());
        Tensor dx32 = w.routerDx().view(0, local);
        backend.gemm(false, false, 1f, dl, w.routerW(), 0f, dx32);
        Tensor dxRouter = flat(w.gathered()).view(0, local);
        backend.cast(dx32, dxRouter);
        backend.add(flat(dx), dxRouter, flat(dx));
    }

    /** The first n rows of x as {@code [n, h]}. */
    private static Tensor rows(Tensor x, int n) {
        return flat(x).view(0, n);
    }

    private static Tensor flat(Tensor x) {
        return x.reshape(-1, x.dim(-1));
    }
}
