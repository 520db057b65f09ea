package org.megatronj.parallel.comm;

/** Element-wise reductions of all-reduce and reduce-scatter (NCCL's ncclSum, ncclMax, ncclMin). */
public enum ReduceOp {
    /** Sum, taken in rank order so that results do not depend on timing. */
    SUM,
    MAX,
    MIN;

    float apply(float a, float b) {
        return switch (this) {
            case SUM -> a + b;
            case MAX -> Math.max(a, b);
            case MIN -> Math.min(a, b);
        };
    }

    long apply(long a, long b) {
        return switch (this) {
            case SUM -> a + b;
            case MAX -> Math.max(a, b);
            case MIN -> Math.min(a, b);
        };
    }
}
