package org.megatronj.parallel.checkpoint;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.DType;
import org.megatronj.memory.FloatFormats;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Gpt2HfWeightsTest {
    @TempDir
    Path dir;

    @Test
    void importThenExportGivesTheSameTensorsBitForBit() throws Exception {
        for (String prefix : new String[] {"transformer.", ""}) {
            Path hf = dir.resolve("hf" + prefix.length());
            try (TensorArena arena = TensorArena.named("hf")) {
                Map<String, Tensor> original = TinyHfGpt2.write(hf, arena, prefix, 5);
                TransformerConfig config = Gpt2HfConfig.read(hf, 128);
                assertEquals(128, config.paddedVocabSize());
                try (SafetensorsFile file = SafetensorsFile.open(hf.resolve("model.safetensors"))) {
                    Map<String, Tensor> megatron = Gpt2HfWeights.toMegatron(file, config, arena);
                    Tensor wte = megatron.get("embedding.word_embeddings.weight");
                    assertArrayEquals(new long[] {128, TinyHfGpt2.HIDDEN}, wte.shape());
                    assertEquals(0f, wte.getFloat((long) TinyHfGpt2.VOCAB * TinyHfGpt2.HIDDEN), "padding rows are zero");
                    Map<String, Tensor> back = Gpt2HfWeights.toHf(megatron, config, arena);
                    assertEquals(original.size(), back.size());
                    for (Map.Entry<String, Tensor> e : original.entrySet()) {
                        String name = e.getKey().startsWith("transformer.") ? e.getKey() : "transformer." + e.getKey();
                        Tensor b = back.get(name);
                        assertArrayEquals(e.getValue().shape(), b.shape(), name);
                        assertArrayEquals(e.getValue().segment().toArray(ValueLayout.JAVA_BYTE), b.segment().toArray(ValueLayout.JAVA_BYTE), name);
                    }
                }
            }
        }
    }

    @Test
    void halfPrecisionWeightsComeBackInTheirDtypeBitForBit() throws Exception {
        for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
            Path hf = dir.resolve(dtype.name());
            try (TensorArena arena = TensorArena.named("hf")) {
                Map<String, Tensor> original = TinyHfGpt2.write(hf, arena, "transformer.", 7, dtype);
                TransformerConfig config = Gpt2HfConfig.read(hf, 128);
                try (SafetensorsFile file = SafetensorsFile.open(hf.resolve("model.safetensors"))) {
                    Map<String, Tensor> megatron = Gpt2HfWeights.toMegatron(file, config, arena);
                    assertEquals(DType.F32, megatron.get("decoder.final_layernorm.bias").dtype(), "imported weights are F32");
                    Map<String, Tensor> back = Gpt2HfWeights.toHf(megatron, config, dtype, arena);
                    for (Map.Entry<String, Tensor> e : original.entrySet()) {
                        Tensor b = back.get(e.getKey());
                        assertEquals(dtype, b.dtype(), e.getKey());
                        assertArrayEquals(e.getValue().segment().toArray(ValueLayout.JAVA_BYTE), b.segment().toArray(ValueLayout.JAVA_BYTE),
                                dtype + " " + e.getKey());
                    }
                }
            }
        }
    }

    @Test
    void exportToBf16RoundsToNearestEven() throws Exception {
        try (TensorArena arena = TensorArena.named("hf")) {
            Map<String, Tensor> original = TinyHfGpt2.write(dir, arena, "transformer.", 8);
            TransformerConfig config = Gpt2HfConfig.read(dir, 128);
            try (SafetensorsFile file = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
                Map<String, Tensor> back = Gpt2HfWeights.toHf(Gpt2HfWeights.toMegatron(file, config, arena), config, DType.BF16, arena);
                Tensor f32 = original.get("transformer.h.0.mlp.c_fc.weight");
                Tensor bf16 = back.get("transformer.h.0.mlp.c_fc.weight");
                assertEquals(DType.BF16, bf16.dtype());
                for (long i = 0; i < f32.numel(); i++) {
                    assertEquals(FloatFormats.floatToBf16(f32.getFloat(i)), bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i));
                }
            }
        }
    }

    @Test
    void fusedQkvIsGroupedPerHeadAndConv1dIsTransposed() throws Exception {
        try (TensorArena arena = TensorArena.named("hf")) {
            Map<String, Tensor> original = TinyHfGpt2.write(dir, arena, "transformer.", 9);
            TransformerConfig c = Gpt2HfConfig.read(dir, 128);
            try (SafetensorsFile file = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
                Map<String, Tensor> m = Gpt2HfWeights.toMegatron(file, c, arena);
                int h = TinyHfGpt2.HIDDEN;
                int d = h / TinyHfGpt2.HEADS;
                Tensor hfQkv = original.get("transformer.h.1.attn.c_attn.weight");            // [h, 3h]: x @ W
                Tensor qkv = m.get("decoder.layers.1.self_attention.linear_qkv.weight");     // [3h, h]: x @ W^T
                // head 1, key channel 2, input feature 3: HF column h + 1*d + 2, ours row 1*3d + d + 2.
                int in = 3;
                assertEquals(hfQkv.getFloat((long) in * 3 * h + h + d + 2), qkv.getFloat((long) (3 * d + d + 2) * h + in));
                // value channel 0 of head 0: HF column 2h, ours row 2d.
                assertEquals(hfQkv.getFloat((long) in * 3 * h + 2 * h), qkv.getFloat((long) (2 * d) * h + in));
                Tensor fc1 = m.get("decoder.layers.0.mlp.linear_fc1.weight");                // [4h, h]
                Tensor cfc = original.get("transformer.h.0.mlp.c_fc.weight");                // [h, 4h]
                assertEquals(cfc.getFloat(5L * 4 * h + 17), fc1.getFloat(17L * h + 5));
            }
        }
    }

    @Test
    void unsupportedConfigValuesAreNamed() throws Exception {
        try (TensorArena arena = TensorArena.named("hf")) {
            TinyHfGpt2.write(dir, arena, "", 1);
        }
        var c = TinyHfGpt2.config();
        c.put("activation_function", "relu");
        Files.writeString(dir.resolve("config.json"), c.toString());
        var e = assertThrows(HfConfigException.class, () -> Gpt2HfConfig.read(dir, 128));
        assertTrue(e.getMessage().contains("activation_function 'relu' is not supported"), e.getMessage());

        c = TinyHfGpt2.config();
        c.put("scale_attn_by_inverse_layer_idx", true);
        Files.writeString(dir.resolve("config.json"), c.toString());
        e = assertThrows(HfConfigException.class, () -> Gpt2HfConfig.read(dir, 128));
        assertTrue(e.getMessage().contains("scale_attn_by_inverse_layer_idx is true"), e.getMessage());

        c = TinyHfGpt2.config();
        c.put("model_type", "llama");
        Files.writeString(dir.resolve("config.json"), c.toString());
        e = assertThrows(HfConfigException.class, () -> Gpt2HfConfig.read(dir, 128));
        assertTrue(e.getMessage().contains("model_type is 'llama'"), e.getMessage());

        // weights with more layers than config.json says
        c = TinyHfGpt2.config();
        c.put("n_layer", 1);
        Files.writeString(dir.resolve("config.json"), c.toString());
        TransformerConfig one = Gpt2HfConfig.read(dir, 128);
        try (TensorArena arena = TensorArena.named("hf"); SafetensorsFile f = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            e = assertThrows(HfConfigException.class, () -> Gpt2HfWeights.toMegatron(f, one, arena));
            assertTrue(e.getMessage().contains("no GPT-2 meaning, e.g. 'h.1."), e.getMessage());
        }
        var rope = TransformerConfig.builder().numLayers(1).hiddenSize(8).numAttentionHeads(2).seqLength(8).vocabSize(10)
                .positionEmbeddingType(org.megatronj.model.PositionEmbeddingType.ROPE).build();
        e = assertThrows(HfConfigException.class, () -> Gpt2HfConfig.requireGpt2Shape(rope));
        assertEquals("a model with --position-embedding-type rope has no Hugging Face GPT-2 equivalent", e.getMessage());
    }

    @Test
    void hfNamesOfMegatronParameters() {
        assertEquals("transformer.h.11.attn.c_attn.weight", Gpt2HfWeights.hfName("decoder.layers.11.self_attention.linear_qkv.weight"));
        assertEquals("transformer.h.0.mlp.c_proj.bias", Gpt2HfWeights.hfName("decoder.layers.0.mlp.linear_fc2.bias"));
        assertEquals("transformer.ln_f.weight", Gpt2HfWeights.hfName("decoder.final_layernorm.weight"));
        assertEquals("transformer.wte.weight", Gpt2HfWeights.hfName("embedding.word_embeddings.weight"));
    }
}
