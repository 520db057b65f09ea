package org.megatronj.memory.cpu;

/**
 * Runs a body over a flat element range in fixed blocks of {@link #SIZE} elements, blocks
 * spread over the worker threads. Each worker gets its own scratch arrays, so kernels load a
 * block of each operand, compute on arrays and store.
 */
final class Blocks {
    /** Elements per block: 16 KiB per operand keeps three operands in L1/L2. */
    static final int SIZE = 4096;

    @FunctionalInterface
    interface Body {
        /** Elements {@code [from, from + len)}; {@code a, b, c} are scratch arrays of {@link #SIZE}. */
        void run(long from, int len, float[] a, float[] b, float[] c);
    }

    private Blocks() {
    }

    static void run(CpuThreads threads, long n, Body body) {
        long blocks = (n + SIZE - 1) / SIZE;
        threads.parallelFor(blocks, 2, (b0, b1) -> {
            float[] a = new float[SIZE];
            float[] b = new float[SIZE];
            float[] c = new float[SIZE];
            for (long blk = b0; blk < b1; blk++) {
                long from = blk * SIZE;
                body.run(from, (int) Math.min(SIZE, n - from), a, b, c);
            }
        });
    }
}
