package org.megatronj.memory.cpu;

/**
 * One thread's reusable scratch for the blocked gemm: packed A and B blocks, the C tile and
 * row buffers for packing. Arrays only grow, so steady-state calls allocate nothing; one
 * instance per worker thread (see {@link #forCurrentThread}).
 */
final class GemmBuffers {
    private static final ThreadLocal<GemmBuffers> PER_THREAD = ThreadLocal.withInitial(GemmBuffers::new);

    private float[] packedA = new float[0];
    private float[] packedB = new float[0];
    private float[] tile = new float[0];
    private float[] row = new float[0];
    private short[] raw = new short[0];

    static GemmBuffers forCurrentThread() {
        return PER_THREAD.get();
    }

    float[] packedA(int size) {
        if (packedA.length < size) {
            packedA = new float[size];
        }
        return packedA;
    }

    float[] packedB(int size) {
        if (packedB.length < size) {
            packedB = new float[size];
        }
        return packedB;
    }

    float[] tile(int size) {
        if (tile.length < size) {
            tile = new float[size];
        }
        return tile;
    }

    float[] row(int size) {
        if (row.length < size) {
            row = new float[size];
        }
        return row;
    }

    short[] raw(int size) {
        if (raw.length < size) {
            raw = new short[size];
        }
        return raw;
    }
}
