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
 * {@code multi_tensor_apply}. Each block takes one chunk of {@link #CHUNK} elements of one tensor
 * from a device table: the tensors' addresses, sizes and weight decays ({@code MjAdamTensor} in
 * {@code optimizer.cu}) and the (tensor, chunk) pair of every block.
 *
 * <p>The table depends only on the addresses, sizes and decays, which an optimizer passes
 * unchanged every step: it is built and uploaded on the first step (one synchronising upload) and
 * looked up by content afterwards; the few most recent tables are kept.
 */
final class CudaMultiTensorAdam implements AutoCloseable {
    /** Elements per block: a multiple of 4 (keeps float4 alignment), 32 float4 per thread of a 256-thread block. */
    static final long CHUNK = 32_768;
    private static final long TENSOR_BYTES = 48; // MjAdamTensor: 4 pointers, i64 n, float weightDecay, int unused
    private static final int KEPT = 4;

    private final CudaBackend backend;
    private final Map<Key, Table> tables = new LinkedHashMap<>(16, 0.75f, true); // least recently used first

    /** Per tensor: param, grad, expAvg, expAvgSq addresses, numel, weight-decay bits. */
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
                           float[] weightDecays, float lr, float beta1, float beta2, float eps, long step) {
        String op = "multiTensorAdamW";
        TensorChecks.multiTensorAdamW(params, grads, expAvgs, expAvgSqs, weightDecays, step);
        int n = params.size();
        long[] words = new long[6 * n];
        for (int i = 0; i < n; i++) {
            words[6 * i] = DeviceChecks.device(op, "params[" + i + "]", params.get(i)).address();
            words[6 * i + 1] = DeviceChecks.device(op, "grads[" + i + "]", grads.get(i)).address();
            words[6 * i + 2] = DeviceChecks.device(op, "expAvgs[" + i + "]", expAvgs.get(i)).address();
            words[6 * i + 3] = DeviceChecks.device(op, "expAvgSqs[" + i + "]", expAvgSqs.get(i)).address();
            words[6 * i + 4] = params.get(i).numel();
            words[6 * i + 5] = Float.floatToRawIntBits(weightDecays[i]);
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
                table.address() + table.chunksOffset(), CHUNK, lr, beta1, beta2, eps, bc1, bc2);
    }

    private Table upload(long[] words) {
        int n = words.length / 6;
        long chunks = 0;
        for (int i = 0; i < n; i++) {
            chunks += (words[6 * i + 4] + CHUNK - 1) / CHUNK;
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
                for (int w = 0; w < 4; w++) {
                    host.set(ValueLayout.JAVA_LONG, base + 8L * w, words[6 * i + w]);
                }
                host.set(ValueLayout.JAVA_LONG, base + 32, words[6 * i + 4]);
                host.set(ValueLayout.JAVA_INT, base + 40, (int) words[6 * i + 5]);
                host.set(ValueLayout.JAVA_INT, base + 44, 0);
                long tensorChunks = (words[6 * i + 4] + CHUNK - 1) / CHUNK;
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
