package org.megatronj.bench;

import java.util.List;

/**
 * A matrix product the gemm benchmark measures: {@code C[m, n] = op(A)[m, k] op(B)[k, n]}, with
 * the transposes as {@code Backend#gemm} takes them.
 */
public record GemmShape(String name, int m, int n, int k, boolean transA, boolean transB, String meaning) {

    /** GPT with hidden 768 (GPT-2 small / Megatron's 125M) at seq 1024 x micro-batch 4 tokens. */
    public static final int GPT_TOKENS = 4096;
    public static final int GPT_HIDDEN = 768;

    /** The shapes of the report, in its order; names are the values of {@code GemmBenchmark.shape}. */
    public static final List<GemmShape> ALL = List.of(
            new GemmShape("square-512", 512, 512, 512, false, false, "512 x 512 x 512"),
            new GemmShape("square-1024", 1024, 1024, 1024, false, false, "1024 x 1024 x 1024"),
            new GemmShape("square-2048", 2048, 2048, 2048, false, false, "2048 x 2048 x 2048"),
            new GemmShape("gpt-qkv-fwd", GPT_TOKENS, 3 * GPT_HIDDEN, GPT_HIDDEN, false, true,
                    "QKV forward y = x W^T: [4096, 768] x [2304, 768]^T"),
            new GemmShape("gpt-qkv-dgrad", GPT_TOKENS, GPT_HIDDEN, 3 * GPT_HIDDEN, false, false,
                    "QKV input grad dx = dy W: [4096, 2304] x [2304, 768]"),
            new GemmShape("gpt-qkv-wgrad", 3 * GPT_HIDDEN, GPT_HIDDEN, GPT_TOKENS, true, false,
                    "QKV weight grad dW = dy^T x: [4096, 2304]^T x [4096, 768]"));

    public static GemmShape named(String name) {
        for (GemmShape s : ALL) {
            if (s.name.equals(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown gemm shape '" + name + "'; known: "
                + ALL.stream().map(GemmShape::name).toList());
    }

    /** Floating point operations of one product (a multiply-add counts two). */
    public double flops() {
        return 2.0 * m * n * k;
    }

    /** "NN", "NT", "TN" or "TT", as BLAS names the transpose case. */
    public String transposes() {
        return (transA ? "T" : "N") + (transB ? "T" : "N");
    }
}
