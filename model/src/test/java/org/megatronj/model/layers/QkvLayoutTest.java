package org.megatronj.model.layers;

import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.cpu.CpuBackend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Megatron-core's per-group interleaved QKV layout, separated and merged by row gathers. */
class QkvLayoutTest {

    @Test
    void gathersFollowThePerGroupLayoutAndMergeInvertsThem() {
        int heads = 4;
        int groups = 2;
        int d = 3;
        int tokens = 70;
        int width = (heads + 2 * groups) * d;
        try (Backend backend = new CpuBackend(); TensorArena arena = TensorArena.named("test")) {
            Tensor fused = arena.allocate(DType.F32, tokens, width);
            for (long i = 0; i < fused.numel(); i++) {
                fused.setFloat(i, i);
            }
            Tensor table = fused.reshape(-1, d);
            Tensor stack = arena.allocate(DType.F32, (long) tokens * (heads + 2 * groups), d);
            long qRows = (long) tokens * heads;
            long kvRows = (long) tokens * groups;
            Tensor q = stack.view(0, qRows);
            Tensor k = stack.view(qRows, qRows + kvRows);
            Tensor v = stack.view(qRows + kvRows, qRows + 2 * kvRows);
            backend.embeddingForward(arena.fromInts(QkvLayout.queryRows(tokens, heads, groups), qRows), table, q);
            backend.embeddingForward(arena.fromInts(QkvLayout.keyValueRows(tokens, heads, groups, false), kvRows), table, k);
            backend.embeddingForward(arena.fromInts(QkvLayout.keyValueRows(tokens, heads, groups, true), kvRows), table, v);
            int per = heads / groups;
            for (int t = 0; t < tokens; t++) {
                for (int g = 0; g < groups; g++) {
                    int groupStart = t * width + g * (per + 2) * d;
                    for (int c = 0; c < d; c++) {
                        for (int j = 0; j < per; j++) {
                            assertEquals(groupStart + j * d + c, q.getFloat(((long) t * heads + g * per + j) * d + c));
                        }
                        assertEquals(groupStart + per * d + c, k.getFloat(((long) t * groups + g) * d + c));
                        assertEquals(groupStart + (per + 1) * d + c, v.getFloat(((long) t * groups + g) * d + c));
                    }
                }
            }
            Tensor back = arena.allocate(DType.F32, tokens * (heads + 2 * groups), d);
            backend.embeddingForward(arena.fromInts(QkvLayout.fusedRowsFromStacked(tokens, heads, groups), back.dim(0)),
                    stack, back);
            assertArrayEquals(fused.toFloatArray(), back.toFloatArray());
        }
    }
}
