package org.megatronj.model.layers;

import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Megatron-core's per-group interleaved QKV layout, on enough tokens to take the parallel path. */
class QkvLayoutTest {

    @Test
    void splitFollowsThePerGroupLayoutAndMergeInvertsIt() {
        int heads = 4;
        int groups = 2;
        int d = 3;
        int tokens = 700;
        int width = (heads + 2 * groups) * d;
        try (TensorArena arena = TensorArena.named("test")) {
            Tensor fused = arena.allocate(DType.F32, tokens, 1, width);
            for (long i = 0; i < fused.numel(); i++) {
                fused.setFloat(i, i);
            }
            Tensor q = arena.allocate(DType.F32, tokens, 1, heads, d);
            Tensor k = arena.allocate(DType.F32, tokens, 1, groups, d);
            Tensor v = arena.allocate(DType.F32, tokens, 1, groups, d);
            QkvLayout layout = new QkvLayout(heads, groups, d);
            layout.split(fused, q, k, v);
            int per = heads / groups;
            for (int t = 0; t < tokens; t += 97) {
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
            Tensor back = arena.allocate(DType.F32, tokens, 1, width);
            layout.merge(q, k, v, back);
            assertArrayEquals(fused.toFloatArray(), back.toFloatArray());
            Tensor wrong = arena.allocate(DType.F32, tokens, 1, heads + 1, d);
            assertThrows(TensorException.class, () -> layout.split(fused, wrong, k, v));
        }
    }
}
