package org.megatronj.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;

/**
 * SelfAttention's two routes give the same GPT, bit for bit: gathering q, k, v out of linear_qkv's
 * fused output (the CPU backend's choice) and handing the fused output to the attention op (the
 * CUDA backend's, where the kernels read it in place). The second route runs here on the CPU
 * backend through a proxy that claims to read the fused layout, so the op's Backend default does
 * the separating.
 */
class FusedQkvAttentionTest {

    /** {@code cpu} in all but {@link Backend#readsFusedQkv}; counts the fused-layout attention calls. */
    private static Backend readingFusedQkv(CpuBackend cpu, AtomicInteger fusedCalls) {
        InvocationHandler handler = (proxy, method, args) -> {
            switch (method.getName()) {
                case "readsFusedQkv":
                    return true;
                case "attentionForwardFusedQkv", "attentionBackwardFusedQkv":
                    fusedCalls.incrementAndGet();
                    return InvocationHandler.invokeDefault(proxy, method, args);
                default:
                    try {
                        return method.invoke(cpu, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
            }
        };
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, handler);
    }

    @Test
    void fusedRouteGivesTheSameLossAndGradients() {
        // GQA: 4 query heads in 2 groups, so the fused layout interleaves 2 queries, a key and a value per group
        TransformerConfig c = TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4)
                .numQueryGroups(2).seqLength(12).maxPositionEmbeddings(16).vocabSize(100).makeVocabSizeDivisibleBy(8)
                .attentionDropout(0).hiddenDropout(0).build();
        MicroBatch batch = GPTModelTest.randomBatch(2, 12, c.vocabSize(), 5);
        AtomicInteger fusedCalls = new AtomicInteger();
        try (CpuBackend cpu = new CpuBackend(2, true)) {
            DeterminismTest.Step gathered = DeterminismTest.step(c, cpu, batch);
            DeterminismTest.Step fused = DeterminismTest.step(c, readingFusedQkv(cpu, fusedCalls), batch);
            assertEquals(2 * c.numLayers(), fusedCalls.get(), "a fused forward and backward per layer");
            DeterminismTest.assertSameBits(gathered, fused, "gathered", "fused");
        }
    }
}
