package org.megatronj.parallel.checkpoint;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.Normalization;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.LlamaHfConfig.Arch;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Models trained here (no imported config.json) export as the Llama-family architecture their shape implies, and that
 * config.json imports back to the same configuration; shapes an architecture cannot express are refused by flag.
 */
class LlamaHfConfigTest {
    private static final Path FILE = Path.of("config.json");

    private static TransformerConfig.Builder llama() {
        return TransformerConfig.builder().numLayers(2).hiddenSize(64).numAttentionHeads(8).numQueryGroups(2).ffnHiddenSize(96)
                .seqLength(128).maxPositionEmbeddings(128).positionEmbeddingType(PositionEmbeddingType.ROPE).rotaryBase(500000f)
                .normalization(Normalization.RMS_NORM).swiglu(true).addBiasLinear(false).geluTanh(false).untieEmbeddingsAndOutputWeights(true)
                .layernormEpsilon(1e-5f).attentionDropout(0f).hiddenDropout(0f).vocabSize(1000).makeVocabSizeDivisibleBy(128);
    }

    private static void roundTrip(TransformerConfig c, Arch arch) {
        assertTrue(LlamaHfConfig.isLlamaFamily(c, null));
        assertEquals(arch, LlamaHfConfig.exportArch(c, null));
        ObjectNode json = LlamaHfConfig.toJson(arch, c, null, DType.BF16);
        assertEquals(arch.modelType(), json.get("model_type").asText());
        assertEquals("bfloat16", json.get("torch_dtype").asText());
        assertEquals(c, LlamaHfConfig.toTransformerConfig(json, FILE, c.makeVocabSizeDivisibleBy()), json.toPrettyString());
    }

    @Test
    void trainedModelsExportAsTheirArchitectureAndImportBack() {
        roundTrip(llama().useRopeScaling(true).ropeScalingFactor(8f).build(), Arch.LLAMA);
        roundTrip(llama().untieEmbeddingsAndOutputWeights(false).rotarySeqLenInterpolationFactor(4f).build(), Arch.LLAMA);
        roundTrip(llama().addQkvBias(true).build(), Arch.QWEN2);
        TransformerConfig qwen3 = llama().qkLayernorm(true).kvChannels(16).build();
        assertEquals(16, LlamaHfConfig.toJson(Arch.QWEN3, qwen3, null, DType.F32).get("head_dim").asInt());
        roundTrip(qwen3, Arch.QWEN3);
        // Mixtral has one intermediate_size, the experts' (Megatron's loader sets --ffn-hidden-size to it too).
        roundTrip(llama().ffnHiddenSize(32).moe(new MoeConfig.Builder(4, 32).routerTopk(2).build()).build(), Arch.MIXTRAL);
        TransformerConfig qwenMoe = llama().addQkvBias(true).moe(new MoeConfig.Builder(4, 32).routerTopk(2)
                .routing(true, MoeConfig.ScoreFunction.SOFTMAX, 0f).sharedExperts(48, true).layerFreq("[0,1]").build()).build();
        ObjectNode json = LlamaHfConfig.toJson(Arch.QWEN2_MOE, qwenMoe, null, DType.F32);
        assertEquals("[0]", json.get("mlp_only_layers").toString());
        assertFalse(json.get("norm_topk_prob").asBoolean());
        roundTrip(qwenMoe, Arch.QWEN2_MOE);
        roundTrip(llama().qkLayernorm(true).moe(new MoeConfig.Builder(4, 32).routerTopk(2).build()).build(), Arch.QWEN3_MOE);
    }

    @Test
    void shapesWithoutAnEquivalentAreRefusedByFlag() {
        record Case(TransformerConfig config, Arch arch, String why) {
        }
        for (Case c : new Case[] {
                new Case(llama().rotaryInterleaved(true).build(), Arch.LLAMA, "--rotary-interleaved"),
                new Case(llama().rotaryPercent(0.5f).build(), Arch.LLAMA, "--rotary-percent 0.5"),
                new Case(llama().qkLayernorm(true).build(), Arch.LLAMA, "--qk-layernorm"),
                new Case(llama().build(), Arch.QWEN2, "no --add-qkv-bias"),
                new Case(llama().addQkvBias(true).kvChannels(16).build(), Arch.QWEN2, "--kv-channels 16"),
                new Case(llama().moe(new MoeConfig.Builder(4, 32).routerTopk(2).layerFreq("[1,0]").build()).build(), Arch.MIXTRAL,
                        "--moe-layer-freq [1,0]"),
                new Case(llama().moe(new MoeConfig.Builder(4, 32).routerTopk(2).routing(false, MoeConfig.ScoreFunction.SIGMOID, 0f)
                        .build()).build(), Arch.MIXTRAL, "--moe-router-score-function sigmoid"),
                new Case(llama().moe(new MoeConfig.Builder(4, 32).routerTopk(2).build()).build(), Arch.LLAMA, "--num-experts 4")}) {
            HfConfigException e = assertThrows(HfConfigException.class, () -> LlamaHfConfig.requireShape(c.arch(), c.config()));
            assertEquals("a model with " + c.why() + " has no Hugging Face " + c.arch().className + " (" + c.arch().modelType()
                    + ") equivalent", e.getMessage());
        }
        assertFalse(LlamaHfConfig.isLlamaFamily(llama().normalization(Normalization.LAYER_NORM).build(), null),
                "LayerNorm models stay with GPT-2's export and its messages");
    }
}
