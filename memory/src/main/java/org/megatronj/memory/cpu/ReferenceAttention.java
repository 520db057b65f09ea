package org.megatronj.memory.cpu;

import org.megatronj.memory.Tensor;

/**
 * Attention the plain way, in float64, for tests: the full score matrix of each (batch, head)
 * is materialised, masked, soft-maxed and multiplied out. Same layout and masking rules (causal, key lengths, key starts) as
 * {@code Backend#attentionForward}; the backward is derived independently of the tiled
 * kernel (it recomputes everything from q, k and v). With dropout, probability {@code (h, b, i, j)}
 * is multiplied by its Philox multiplier ({@link Philox#uniform} of stream element
 * {@code offset + ((h * batch + b) * s + i) * sk + j}, as {@code Backend#attentionForward} defines).
 */
public final class ReferenceAttention {
    private ReferenceAttention() {
    }

    /** out {@code [s, b, np, d]} and lse {@code [b, np, s]} in float64. */
    public record Forward(double[] out, double[] lse) {
    }

    /** Gradients in float64, laid out like q, k and v. */
    public record Gradients(double[] dq, double[] dk, double[] dv) {
    }

    public static Forward forward(Tensor q, Tensor k, Tensor v, double scale, boolean causal, Tensor keyLengths) {
        return forward(q, k, v, scale, causal, keyLengths, null, 0f, 0L, 0L);
    }

    /** With key starts (may be null) and dropout p on the probabilities; lse is the undropped softmax's. */
    public static Forward forward(Tensor q, Tensor k, Tensor v, double scale, boolean causal, Tensor keyLengths,
                                  Tensor keyStarts, float p, long seed, long offset) {
        AttentionShape a = AttentionShape.of("ReferenceAttention.forward", q, k, v);
        double[] qd = doubles(q);
        double[] kd = doubles(k);
        double[] vd = doubles(v);
        double[] out = new double[(int) q.numel()];
        double[] lse = new double[a.batch() * a.np() * a.s()];
        for (int b = 0; b < a.batch(); b++) {
            for (int h = 0; h < a.np(); h++) {
                double[][] pr = probabilities(a, qd, kd, b, h, scale, causal, keyLengths, keyStarts, lse);
                double[][] z = multipliers(a, b, h, p, seed, offset);
                int g = h / a.headsPerGroup();
                for (int i = 0; i < a.s(); i++) {
                    for (int j = 0; j < a.sk(); j++) {
                        for (int c = 0; c < a.d(); c++) {
                            out[(int) a.qOffset(i, b, h) + c] += pr[i][j] * z[i][j] * vd[(int) a.kOffset(j, b, g) + c];
                        }
                    }
                }
            }
        }
        return new Forward(out, lse);
    }

    public static Gradients backward(Tensor dOut, Tensor q, Tensor k, Tensor v, double scale, boolean causal,
                                     Tensor keyLengths) {
        return backward(dOut, q, k, v, scale, causal, keyLengths, null, 0f, 0L, 0L);
    }

    /** Gradients of {@link #forward(Tensor, Tensor, Tensor, double, boolean, Tensor, Tensor, float, long, long)}. */
    public static Gradients backward(Tensor dOut, Tensor q, Tensor k, Tensor v, double scale, boolean causal,
                                     Tensor keyLengths, Tensor keyStarts, float dropP, long seed, long offset) {
        AttentionShape a = AttentionShape.of("ReferenceAttention.backward", q, k, v);
        double[] qd = doubles(q);
        double[] kd = doubles(k);
        double[] vd = doubles(v);
        double[] dod = doubles(dOut);
        double[] dq = new double[(int) q.numel()];
        double[] dk = new double[(int) k.numel()];
        double[] dv = new double[(int) v.numel()];
        double[] lse = new double[a.batch() * a.np() * a.s()];
        for (int b = 0; b < a.batch(); b++) {
            for (int h = 0; h < a.np(); h++) {
                double[][] p = probabilities(a, qd, kd, b, h, scale, causal, keyLengths, keyStarts, lse);
                double[][] z = multipliers(a, b, h, dropP, seed, offset);
                int g = h / a.headsPerGroup();
                for (int i = 0; i < a.s(); i++) {
                    int qo = (int) a.qOffset(i, b, h);
                    // out_i = sum_j P_ij Z_ij v_j: dP_ij = (dO_i . v_j) Z_ij ; dS_ij = P_ij (dP_ij - sum_l P_il dP_il)
                    double[] dp = new double[a.sk()];
                    double rowDot = 0;
                    for (int j = 0; j < a.sk(); j++) {
                        for (int c = 0; c < a.d(); c++) {
                            dp[j] += dod[qo + c] * vd[(int) a.kOffset(j, b, g) + c];
                        }
                        dp[j] *= z[i][j];
                        rowDot += p[i][j] * dp[j];
                    }
                    for (int j = 0; j < a.sk(); j++) {
                        double ds = p[i][j] * (dp[j] - rowDot) * scale;
                        int ko = (int) a.kOffset(j, b, g);
                        for (int c = 0; c < a.d(); c++) {
                            dq[qo + c] += ds * kd[ko + c];
                            dk[ko + c] += ds * qd[qo + c];
                            dv[ko + c] += p[i][j] * z[i][j] * dod[qo + c];
                        }
                    }
                }
            }
        }
        return new Gradients(dq, dk, dv);
    }

    /** The dropout multipliers {@code [s][sk]} of one (batch, head): 0 or {@code 1 / (1 - p)} (in float, as the kernels); all 1 for p = 0. */
    private static double[][] multipliers(AttentionShape a, int b, int h, float p, long seed, long offset) {
        double[][] z = new double[a.s()][a.sk()];
        float keep = 1f / (1f - p);
        for (int i = 0; i < a.s(); i++) {
            for (int j = 0; j < a.sk(); j++) {
                long e = offset + (((long) h * a.batch() + b) * a.s() + i) * a.sk() + j;
                z[i][j] = p == 0f ? 1 : Philox.uniform(seed, e) >= p ? keep : 0;
            }
        }
        return z;
    }

    private static double[] doubles(Tensor t) {
        float[] f = t.toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    /** Softmax of the masked, scaled scores of one (batch, head): {@code [s][sk]}; fills lse. */
    private static double[][] probabilities(AttentionShape a, double[] q, double[] k, int b, int h, double scale,
                                            boolean causal, Tensor keyLengths, Tensor keyStarts, double[] lse) {
        int g = h / a.headsPerGroup();
        int keyLength = keyLengths == null ? a.sk() : (int) keyLengths.getLong(b);
        double[][] p = new double[a.s()][a.sk()];
        for (int i = 0; i < a.s(); i++) {
            int keyStart = keyStarts == null ? 0 : (int) keyStarts.getLong((long) b * a.s() + i);
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < a.sk(); j++) {
                boolean visible = j >= keyStart && j < keyLength && (!causal || j <= i + (a.sk() - a.s()));
                if (!visible) {
                    p[i][j] = Double.NEGATIVE_INFINITY;
                    continue;
                }
                double dot = 0;
                for (int c = 0; c < a.d(); c++) {
                    dot += q[(int) a.qOffset(i, b, h) + c] * k[(int) a.kOffset(j, b, g) + c];
                }
                p[i][j] = dot * scale;
                max = Math.max(max, p[i][j]);
            }
            double sum = 0;
            for (int j = 0; j < a.sk(); j++) {
                p[i][j] = max == Double.NEGATIVE_INFINITY ? 0 : Math.exp(p[i][j] - max);
                sum += p[i][j];
            }
            for (int j = 0; j < a.sk(); j++) {
                p[i][j] = sum == 0 ? 0 : p[i][j] / sum;
            }
            lse[(int) a.lseOffset(b, h, i)] = sum == 0 ? Double.NEGATIVE_INFINITY : max + Math.log(sum);
        }
        return p;
    }
}
