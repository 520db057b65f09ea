package org.megatronj.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FlopCounterTest {

    @Test
    void gpt2MatchesTheClassicFormula() {
        TransformerConfig c = TransformerConfig.gpt2Small(50257);
        double b = 8, s = 1024, l = 12, h = 768, v = 50304;
        double classic = 72 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h));
        assertEquals(classic, FlopCounter.trainingFlopsPerIteration(c, 8), classic * 1e-12);
        assertEquals(classic / (b * s), FlopCounter.trainingFlopsPerToken(c), classic * 1e-12);
        assertEquals(0.5, FlopCounter.mfu(1e15, 2.0, 1e15), 1e-12);
    }

    @Test
    void gqaAndSwigluTerms() {
        TransformerConfig c = TransformerConfig.builder().numLayers(2).hiddenSize(256).numAttentionHeads(8).numQueryGroups(2)
                .swiglu(true).ffnHiddenSize(512).seqLength(128).vocabSize(1000).build();
        double h = 256, s = 128, l = 2, v = 1024;
        double expected = 12 * s * l * h * h * ((1 + 2.0 / 8 + s / h) + (512 / h) * 1.5 + v / (2 * l * h));
        assertEquals(expected, FlopCounter.trainingFlopsPerIteration(c, 1), expected * 1e-12);
        // today's Megatron counts the causal half of QK^T and PV: 6 L b s^2 (np d) less
        double causalHalf = 6 * l * 3 * s * s * (8 * 32);
        assertEquals(FlopCounter.trainingFlopsPerIteration(c, 3) - causalHalf, FlopCounter.megatronLoggedFlopsPerIteration(c, 3),
                expected * 1e-12);
    }

    /**
     * Against what Megatron-LM's own {@code num_floating_point_operations} returns (today's for the logged count, the
     * version before its commit 8873b55d6a for the classic one) for two dense and four MoE setups (8 experts top-2
     * SwiGLU; a {@code --moe-layer-freq} list with shared experts and {@code --moe-ffn-hidden-size}; freq 2 top-1 gelu;
     * freq 2 at TP 2 with GPT-2's vocabulary padded for the tensor ranks), made by {@code make_flop_fixtures.py}.
     */
    @Test
    void matchesMegatronsNumFloatingPointOperations() throws IOException {
        JsonNode cases;
        try (InputStream in = getClass().getResourceAsStream("flops.json")) {
            cases = new ObjectMapper().readTree(in).get("cases");
        }
        assertEquals(8, cases.size());
        int moeCases = 0;
        for (JsonNode k : cases) {
            String name = k.get("name").asText();
            JsonNode a = k.get("args");
            TransformerConfig.Builder b = TransformerConfig.builder().numLayers(a.get("num_layers").asInt())
                    .hiddenSize(a.get("hidden_size").asInt()).numAttentionHeads(a.get("num_attention_heads").asInt())
                    .kvChannels(a.get("kv_channels").asInt()).numQueryGroups(a.get("num_query_groups").asInt())
                    .ffnHiddenSize(a.get("ffn_hidden_size").asInt()).swiglu(a.get("swiglu").asBoolean())
                    .seqLength(a.get("seq_length").asInt());
            int tp = a.path("tensor_model_parallel_size").asInt(1);
            if (a.has("vocab_size")) {
                b.vocabSize(a.get("vocab_size").asInt()).makeVocabSizeDivisibleBy(a.get("make_vocab_size_divisible_by").asInt());
            } else {
                b.vocabSize(a.get("padded_vocab_size").asInt()).makeVocabSizeDivisibleBy(8);
            }
            if (!a.get("num_experts").isNull()) {
                moeCases++;
                int topk = a.get("moe_router_topk").asInt();
                MoeConfig moe = MoeConfig.of(a.get("num_experts").asInt(), a.get("moe_ffn_hidden_size").asInt())
                        .withRouterTopk(topk).withLayerFreq(a.get("moe_layer_freq").asText())
                        .withSharedExperts(a.get("moe_shared_expert_intermediate_size").asInt(0), false)
                        .withRouting(topk == 1, MoeConfig.ScoreFunction.SOFTMAX, 0f);
                b.moe(moe).addBiasLinear(false);
            }
            if (!a.path("mtp_num_layers").isMissingNode() && !a.get("mtp_num_layers").isNull()) {
                b.mtp(MtpConfig.of(a.get("mtp_num_layers").asInt())).positionEmbeddingType(PositionEmbeddingType.ROPE);
            }
            TransformerConfig c = b.build();
            assertEquals(a.get("padded_vocab_size").asInt(), c.paddedVocabSize(tp), name);
            long batch = k.get("batch_size").asLong();
            double logged = k.get("logged").asDouble();
            double classic = k.get("classic").asDouble();
            assertEquals(logged, FlopCounter.megatronLoggedFlopsPerIteration(c, batch, tp), logged * 1e-12, name);
            assertEquals(classic, FlopCounter.trainingFlopsPerIteration(c, batch, tp), classic * 1e-12, name);
            if (tp == 1) {
                assertEquals(logged, FlopCounter.megatronLoggedFlopsPerIteration(c, batch), logged * 1e-12, name);
                assertEquals(classic, FlopCounter.trainingFlopsPerIteration(c, batch), classic * 1e-12, name);
            } else {   // the vocabulary padded for one rank only is fewer logits
                assertTrue(FlopCounter.megatronLoggedFlopsPerIteration(c, batch) < logged * (1 - 1e-6), name);
            }
        }
        assertEquals(5, moeCases);
    }

    /** Megatron's MLA branch of today's num_floating_point_operations (q latent or not, with MoE), from make_flop_fixtures.py. */
    @Test
    void multiLatentAttentionMatchesMegatrons() throws IOException {
        JsonNode cases;
        try (InputStream in = getClass().getResourceAsStream("flops.json")) {
            cases = new ObjectMapper().readTree(in).get("mla_cases");
        }
        assertEquals(3, cases.size());
        for (JsonNode k : cases) {
            JsonNode a = k.get("args");
            MlaConfig mla = MlaConfig.of(a.get("q_lora_rank").asInt(0), a.get("kv_lora_rank").asInt(),
                    a.get("qk_head_dim").asInt(), a.get("qk_pos_emb_head_dim").asInt(), a.get("v_head_dim").asInt());
            TransformerConfig.Builder b = TransformerConfig.builder().numLayers(a.get("num_layers").asInt())
                    .hiddenSize(a.get("hidden_size").asInt()).numAttentionHeads(a.get("num_attention_heads").asInt())
                    .kvChannels(a.get("kv_channels").asInt()).ffnHiddenSize(a.get("ffn_hidden_size").asInt())
                    .swiglu(a.get("swiglu").asBoolean()).seqLength(a.get("seq_length").asInt())
                    .positionEmbeddingType(PositionEmbeddingType.ROPE)
                    .vocabSize(a.get("padded_vocab_size").asInt()).makeVocabSizeDivisibleBy(8).mla(mla);
            if (!a.get("num_experts").isNull()) {
                b.moe(MoeConfig.of(a.get("num_experts").asInt(), a.get("moe_ffn_hidden_size").asInt())
                        .withRouterTopk(a.get("moe_router_topk").asInt()).withLayerFreq(a.get("moe_layer_freq").asText())
                        .withSharedExperts(a.get("moe_shared_expert_intermediate_size").asInt(0), false))
                        .addBiasLinear(false);
            }
            double logged = k.get("logged").asDouble();
            assertEquals(logged, FlopCounter.megatronLoggedFlopsPerIteration(b.build(), k.get("batch_size").asLong()),
                    logged * 1e-12, k.get("name").asText());
        }
    }

    @Test
    void moeLayersAndTheirWidthsCount() {
        // 4 layers, MoE at 0 and 2: today's count takes 2 dense MLPs of ffn and 2 MoE layers of k moe_ffn + shared
        MoeConfig moe = MoeConfig.of(4, 80).withRouterTopk(2).withLayerFreq("2").withSharedExperts(48, false);
        TransformerConfig c = TransformerConfig.builder().numLayers(4).hiddenSize(64).numAttentionHeads(4).ffnHiddenSize(256)
                .seqLength(32).vocabSize(128).addBiasLinear(false).moe(moe).build();
        TransformerConfig dense = c.toBuilder().moe(null).build();
        double tokens = 3 * 32, h = 64;
        double difference = tokens * 6 * h * 2 * (2 * 80 + 48 - 256) * 2;   // 2 MoE layers, gelu (2 GEMMs)
        assertEquals(FlopCounter.megatronLoggedFlopsPerIteration(dense, 3) + difference,
                FlopCounter.megatronLoggedFlopsPerIteration(c, 3), 1e-3);
        // the classic count takes every layer as MoE: 4 layers of k moe_ffn + shared instead of ffn
        double classicDifference = tokens * 6 * h * 4 * (2 * 80 + 48 - 256) * 2;
        assertEquals(FlopCounter.trainingFlopsPerIteration(dense, 3) + classicDifference,
                FlopCounter.trainingFlopsPerIteration(c, 3), 1e-3);
    }
}
