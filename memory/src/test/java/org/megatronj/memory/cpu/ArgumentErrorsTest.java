package org.megatronj.memory.cpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.memory.TensorException;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad arguments throw a {@link TensorException} naming the op, what it got and what it expected. */
class ArgumentErrorsTest {
    private final CpuBackend backend = OpTesting.vector();

    private static void assertMessage(Executable call, String... fragments) {
        TensorException e = assertThrows(TensorException.class, call);
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "message '" + e.getMessage() + "' lacks '" + f + "'");
        }
    }

    @Test
    void shapeMismatch() {
        try (TensorArena arena = new TensorArena("test")) {
            Tensor a = arena.allocate(DType.F32, 3, 5);
            Tensor b = arena.allocate(DType.F32, 3, 6);
            assertMessage(() -> backend.add(a, b, a), "add:", "[3, 5]", "[3, 6]", "expected equal shapes");
            assertMessage(() -> backend.geluForward(a, b, true), "geluForward:", "[3, 5]", "[3, 6]");
            assertMessage(() -> backend.squaredReluBackward(a, a, b), "squaredReluBackward:", "[3, 5]", "[3, 6]");
            Tensor gamma = arena.allocate(DType.F32, 4);
            Tensor stats = arena.allocate(DType.F32, 3);
            assertMessage(() -> backend.layerNormForward(a, gamma, null, 1e-5f, a, stats, stats),
                    "layerNormForward:", "gamma", "[4]", "expected [5]");
            Tensor wrongStats = arena.allocate(DType.F32, 2);
            Tensor gamma5 = arena.allocate(DType.F32, 5);
            assertMessage(() -> backend.rmsNormForward(a, gamma5, 1e-5f, a, wrongStats),
                    "rmsNormForward:", "rstd", "[2]", "expected 3 elements");
            assertMessage(() -> backend.swigluForward(a, b), "swigluForward:", "[3, 5]", "2f");
            Tensor targets = arena.allocate(DType.I32, 4);
            assertMessage(() -> backend.crossEntropyTargetLogit(a, targets, 0, stats),
                    "crossEntropyTargetLogit:", "targets", "[4]", "expected 3 elements");
        }
    }

    @Test
    void dtypeMismatch() {
        try (TensorArena arena = new TensorArena("test")) {
            Tensor x = arena.allocate(DType.F32, 4, 8);
            Tensor dBias = arena.allocate(DType.BF16, 8);
            assertMessage(() -> backend.biasBackward(x, dBias), "biasBackward:", "dBias is BF16[8]", "expected F32");
            Tensor ids = arena.allocate(DType.I64, 4);
            assertMessage(() -> backend.embeddingForward(ids, x, x), "embeddingForward:", "ids is I64", "expected I32");
            Tensor ints = arena.allocate(DType.I32, 4, 8);
            assertMessage(() -> backend.scale(ints, 2f), "scale:", "I32", "expected F32, BF16 or F16");
            Tensor bf = arena.allocate(DType.BF16, 4, 8);
            assertMessage(() -> backend.copy(x, bf), "copy:", "F32", "BF16", "expected the same dtype");
        }
    }

    @Test
    void scaleRowsAndRowDot() {
        try (TensorArena arena = new TensorArena("test")) {
            Tensor x = arena.allocate(DType.BF16, 3, 5);
            Tensor wide = arena.allocate(DType.BF16, 3, 6);
            Tensor scales = arena.allocate(DType.F32, 3);
            assertMessage(() -> backend.scaleRows(x, scales, wide), "scaleRows:", "[3, 5]", "[3, 6]", "expected equal shapes");
            Tensor bfScales = arena.allocate(DType.BF16, 3);
            assertMessage(() -> backend.scaleRows(x, bfScales, x), "scaleRows:", "scales is BF16[3]", "expected F32");
            Tensor perColumn = arena.allocate(DType.F32, 5);
            assertMessage(() -> backend.scaleRows(x, perColumn, x), "scaleRows:", "scales has shape [5]",
                    "expected 3 elements", "one F32 per row of x [3, 5]");
            Tensor ints = arena.allocate(DType.I32, 3, 5);
            assertMessage(() -> backend.scaleRows(ints, scales, ints), "scaleRows:", "x is I32[3, 5]", "expected F32, BF16 or F16");

            assertMessage(() -> backend.rowDot(x, wide, scales), "rowDot:", "[3, 5]", "[3, 6]", "expected equal shapes");
            Tensor bfOut = arena.allocate(DType.BF16, 3);
            assertMessage(() -> backend.rowDot(x, x, bfOut), "rowDot:", "out is BF16[3]", "expected F32");
            Tensor shortOut = arena.allocate(DType.F32, 2);
            assertMessage(() -> backend.rowDot(x, x, shortOut), "rowDot:", "out has shape [2]", "expected 3 elements",
                    "one F32 per row of a [3, 5]");
            assertMessage(() -> backend.rowDot(x, ints, scales), "rowDot:", "b is I32[3, 5]", "expected F32, BF16 or F16");
        }
    }

    @Test
    void freedArena() {
        TensorArena arena = new TensorArena("activations");
        Tensor x = arena.allocate(DType.F32, 16);
        arena.close();
        assertMessage(() -> backend.scale(x, 2f), "scale:", "x", "freed", "'activations'");
        try (TensorArena live = new TensorArena("live")) {
            Tensor y = live.allocate(DType.F32, 16);
            assertMessage(() -> backend.add(y, x, y), "add:", "b", "freed");
        }
    }

    @Test
    void attentionArguments() {
        try (TensorArena arena = new TensorArena("test")) {
            Tensor q = arena.allocate(DType.F32, 4, 1, 3, 8);
            Tensor k = arena.allocate(DType.F32, 4, 1, 2, 8);
            Tensor lse = arena.allocate(DType.F32, 1, 3, 4);
            assertMessage(() -> backend.attentionForward(q, k, k, q, lse, 1f, true, null),
                    "attentionForward:", "3 query heads", "2 key/value groups");
            Tensor k1 = arena.allocate(DType.F32, 4, 1, 1, 8);
            Tensor badLse = arena.allocate(DType.F32, 1, 4, 3);
            assertMessage(() -> backend.attentionForward(q, k1, k1, q, badLse, 1f, true, null),
                    "attentionForward:", "lse", "[1, 4, 3]", "expected [1, 3, 4]");
            Tensor lengths = arena.fromInts(new int[] {5}, 1);
            assertMessage(() -> backend.attentionForward(q, k1, k1, q, lse, 1f, true, lengths),
                    "attentionForward:", "keyLengths[0] = 5", "sk = 4");
            Tensor starts = arena.fromInts(new int[] {0, 0, 5, 1}, 1, 4);
            assertMessage(() -> backend.attentionForward(q, k1, k1, q, lse, 1f, true, null, starts, 0f, 0L, 0L),
                    "attentionForward:", "keyStarts[0, 2] = 5", "sk = 4");
            Tensor flatStarts = arena.fromInts(new int[] {0, 0, 1, 1}, 4);
            assertMessage(() -> backend.attentionForward(q, k1, k1, q, lse, 1f, true, null, flatStarts, 0f, 0L, 0L),
                    "attentionForward:", "keyStarts", "[1, 4]");
        }
    }

    @Test
    void badScalars() {
        try (TensorArena arena = new TensorArena("test")) {
            Tensor x = arena.allocate(DType.F32, 10);
            assertMessage(() -> backend.dropoutForward(x, x, 1f, 1, 0), "dropoutForward:", "p = 1.0", "0 <= p < 1");
            assertMessage(() -> backend.adamW(x, x, x, x, 1e-3f, 0.9f, 0.99f, 1e-8f, 0f, 0),
                    "adamW:", "step = 0", "step >= 1");
            Tensor logits = arena.allocate(DType.F32, 2, 5);
            assertMessage(() -> backend.logSoftmax(logits, 0f, logits), "logSoftmax:", "temperature = 0.0");
        }
    }
}
