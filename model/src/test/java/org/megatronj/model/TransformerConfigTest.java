package org.megatronj.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TransformerConfigTest {

    @Test
    void derivesMegatronDefaults() {
        TransformerConfig c = TransformerConfig.gpt2Small(50257);
        assertEquals(3072, c.ffnHiddenSize());
        assertEquals(64, c.kvChannels());
        assertEquals(12, c.numQueryGroups());
        assertEquals(50304, c.paddedVocabSize());
        assertEquals(50688, c.paddedVocabSize(4));       // tensor parallel 4: a multiple of 128 * 4
        assertEquals(0.1f, c.hiddenDropout());
        assertEquals(1e-5f, c.layernormEpsilon());
        assertTrue(c.geluTanh());
        assertEquals(3 * 768, c.qkvWidth());

        TransformerConfig llama = TransformerConfig.builder().numLayers(2).hiddenSize(4096).numAttentionHeads(32)
                .numQueryGroups(8).swiglu(true).seqLength(4096).vocabSize(32000)
                .positionEmbeddingType(PositionEmbeddingType.ROPE).normalization(Normalization.RMS_NORM).build();
        assertEquals(10880, llama.ffnHiddenSize());       // int(4h * 2/3 / 64) * 64, as Megatron
        assertEquals(2 * 10880, llama.fc1Width());
        assertEquals((32 + 16) * 128, llama.qkvWidth());
        assertEquals(128, llama.rotaryDim());
    }

    @Test
    void rejectsInconsistentKnobsWithSentences() {
        var e = assertThrows(IllegalArgumentException.class, () -> TransformerConfig.builder().numLayers(2).hiddenSize(100)
                .numAttentionHeads(3).seqLength(8).vocabSize(10).build());
        assertTrue(e.getMessage().contains("--hidden-size (100) must be a multiple of --num-attention-heads (3)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransformerConfig.builder().numLayers(2).hiddenSize(64)
                .numAttentionHeads(4).numQueryGroups(3).seqLength(8).vocabSize(10).build());
        assertTrue(e.getMessage().contains("--num-query-groups"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransformerConfig.builder().numLayers(2).hiddenSize(64)
                .numAttentionHeads(4).seqLength(16).maxPositionEmbeddings(8).vocabSize(10).build());
        assertTrue(e.getMessage().contains("--seq-length (16) must not exceed --max-position-embeddings (8)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransformerConfig.builder().numLayers(0).hiddenSize(64)
                .numAttentionHeads(4).seqLength(8).vocabSize(10).build());
        assertTrue(e.getMessage().contains("--num-layers must be positive"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransformerConfig.builder().numLayers(1).hiddenSize(64)
                .numAttentionHeads(4).seqLength(8).vocabSize(10).hiddenDropout(1f).build());
        assertTrue(e.getMessage().contains("--hidden-dropout must be in [0, 1)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TransformerConfig.builder().numLayers(1).hiddenSize(64)
                .numAttentionHeads(4).seqLength(8).vocabSize(10).swiglu(true).squaredRelu(true).build());
        assertTrue(e.getMessage().contains("--squared-relu and --swiglu cannot be combined"), e.getMessage());
        assertEquals(PositionEmbeddingType.ROPE, PositionEmbeddingType.parse("rope"));
        assertEquals(Normalization.RMS_NORM, Normalization.parse("RMSNorm"));
        assertThrows(IllegalArgumentException.class, () -> Normalization.parse("BatchNorm"));
    }
}
