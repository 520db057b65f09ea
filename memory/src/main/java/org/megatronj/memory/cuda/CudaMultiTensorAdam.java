package org.megatronj.memory.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorChecks;

/**
 * {@link CudaBackend#multiTensorAdamW}: one launch of {@code megatron_adamw_multi} for all
 * parameters (GPT-2 124M: 161 tensors, 1 launch instead of 161), as Megatron's
 * {@code multi_tensor_apply}, with the gradient clip's scale and the cast into the compute copies
 * done in the same pass. Each block takes one chunk of {@link #CHUNK} elements of one tensor from a
 * device table: the tensors' addresses, compute copies, sizes and weight decays
 * ({@code MjAdamTensor} in {@code optimizer.cu}) and the (tensor, chunk) pair of every block.
 *
 * <p>The table depends only on the addresses, dtypes, sizes and decays, which an optimizer passes
 * unchanged every step (the grad scale, which changes, is a launch argument): it is built and
 * uploaded on the first step (one synchronising upload) and looked up by content afterwards; the
 * few most recent tables are kept.
 */
final class CudaMultiTensorAdam implements AutoCloseable {
    /** Elements per block: a multiple of 4 (keeps float4 alignment), 32 float4 per thread of a 256-thread block. */
    static final long CHUNK = 32_768;
    private static final long TENSOR_BYTES = 56; // MjAdamTensor: 5 pointers, i64 n, float weightDecay, int copyType
    private static final int WORDS = 8; // per tensor in a Key
    private static final int KEPT = 4;

    private final CudaBackend backend;
    private final Map<Key, Table> tables = new LinkedHashMap<>(16, 0.75f, true); // least recently used first

    /** Per tensor: param, grad, expAvg, expAvgSq, compute-copy addresses (0: none), numel, weight-decay bits, copy dtype code. */
    private record Key(long[] words) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && Arrays.equals(words, k.words);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(words);
        }
    }

    /** Device copy of a table: tensor entries at {@code address}, chunk pairs after them. */
    private record Table(long address, long bytes, long chunksOffset, long chunks) {
    }

    CudaMultiTensorAdam(CudaBackend backend) {
        this.backend = backend;
    }

    synchronized void step(List<Tensor> params, List<Tensor> grads, List<Tensor> expAvgs, List<Tensor> expAvgSqs,
                           float[] weightDecays, float lr, float beta1, float beta2, float eps, long step,
                           float gradScale, List<Tensor> computeCopies) {
        String op = "multiTensorAdamW";
        TensorChecks.multiTensorAdamW(params, grads, expAvgs, expAvgSqs, weightDecays, step, computeCopies);
        int n = params.size();
        long[] words = new long[WORDS * n];
        for (int i = 0; i < n; i++) {
            int w = WORDS * i;
            words[w] = DeviceChecks.device(op, "params[" + i + "]", params.get(i)).address();
            words[w + 1] = DeviceChecks.device(op, "grads[" + i + "]", grads.get(i)).address();
            words[w + 2] = DeviceChecks.device(op, "expAvgs[" + i + "]", expAvgs.get(i)).address();
            words[w + 3] = DeviceChecks.device(op, "expAvgSqs[" + i + "]", expAvgSqs.get(i)).address();
            if (computeCopies != null) {
                Tensor copy = DeviceChecks.floating(op, "computeCopies[" + i + "]", computeCopies.get(i));
                words[w + 4] = copy.address();
                words[w + 7] = DeviceChecks.code(op, copy);
            }
            words[w + 5] = params.get(i).numel();
            words[w + 6] = Float.floatToRawIntBits(weightDecays[i]);
        }
        float bc1 = (float) (1.0 - Math.pow(beta1, step)); // as CudaLossOps.adamW
        float bc2 = (float) (1.0 - Math.pow(beta2, step));
        backend.enter();
        Key key = new Key(words);
        Table table = tables.get(key);
        if (table == null) {
            table = upload(words);
            tables.put(key, table);
            evict();
        }
        if (table.chunks() == 0) {
            return;
        }
        backend.launch("megatron_adamw_multi", table.chunks(), 1, CudaBackend.THREADS, 0, table.address(),
                table.address() + table.chunksOffset(), CHUNK, lr, beta1, beta2, eps, bc1, bc2, gradScale);
    }

    private Table upload(long[] words) {
        int n = words.length / WORDS;
        long chunks = 0;
        for (int i = 0; i < n; i++) {
            chunks += (words[WORDS * i + 5] + CHUNK - 1) / CHUNK;
        }
        if (chunks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("multiTensorAdamW: " + chunks + " chunks of " + CHUNK
                    + " elements exceed one launch's grid");
        }
        long chunksOffset = (n * TENSOR_BYTES + 15) / 16 * 16;
        long bytes = chunksOffset + chunks * 8;
        if (chunks == 0) {
            return new Table(0, 0, 0, 0);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(bytes, 16);
            long at = chunksOffset;
            for (int i = 0; i < n; i++) {
                long base = i * TENSOR_BYTES;
                int w = WORDS * i;
                for (int k = 0; k < 5; k++) { // param, grad, expAvg, expAvgSq, copy
                    host.set(ValueLayout.JAVA_LONG, base + 8L * k, words[w + k]);
                }
                host.set(ValueLayout.JAVA_LONG, base + 40, words[w + 5]);
                host.set(ValueLayout.JAVA_INT, base + 48, (int) words[w + 6]);
                host.set(ValueLayout.JAVA_INT, base + 52, (int) words[w + 7]);
                long tensorChunks = (words[w + 5] + CHUNK - 1) / CHUNK;
                for (long c = 0; c < tensorChunks; c++) {
                    host.set(ValueLayout.JAVA_INT, at, i);
                    host.set(ValueLayout.JAVA_INT, at + 4, Math.toIntExact(c));
                    at += 8;
                }
            }
            long address = backend.temporary(bytes);
            backend.upload(host, address);
            return new Table(address, bytes, chunksOffset, chunks);
        }
    }

    /** Frees the least recently used tables beyond {@link #KEPT} (stream-ordered: after their last launch). */
    private void evict() {
        Iterator<Table> it = tables.values().iterator();
        while (tables.size() > KEPT && it.hasNext()) {
            Table t = it.next();
            it.remove();
            free(t);
        }
    }

    private void free(Table t) {
        if (t.bytes() > 0) {
            backend.release(t.address(), t.bytes());
        }
    }

    /** Tables cached now (for tests). */
    synchronized int tableCount() {
        return tables.size();
    }

    @Override
    public synchronized void close() {
        for (Table t : tables.values()) {
            free(t);
        }
        tables.clear();
    }
}
