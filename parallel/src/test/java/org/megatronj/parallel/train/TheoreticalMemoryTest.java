package org.megatronj.parallel.train;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.megatronj.model.MoeConfig;
import org.megatronj.model.MtpConfig;
import org.megatronj.model.PositionEmbeddingType;
import org.megatronj.model.Normalization;
import org.megatronj.model.TransformerConfig;

/**
 * Against what Megatron-LM's own {@code report_theoretical_memory} prints and returns for six dense setups
 * (TP with SP and selective recompute, GQA, PP with the distributed optimizer, the interleaved schedule, untied
 * embeddings, RMSNorm and SwiGLU) and three mixture-of-experts ones (Mixtral-like 8 experts top-2 with TP, SP and
 * the distributed optimizer; a {@code --moe-layer-freq} list with gated shared experts, PP and CP; every second
 * layer MoE, top-1, with shared experts and the interleaved schedule), made by
 * {@code make_theoretical_memory_fixtures.py}.
 */
class TheoreticalMemoryTest {

    @Test
    void matchesMegatronsReport() throws IOException {
        JsonNode cases;
        try (InputStream in = getClass().getResourceAsStream("theoretical-memory.json")) {
            cases = new ObjectMapper().readTree(in).get("cases");
        }
        assertEquals(13, cases.size());
        int mlaCases = 0;
        int moeCases = 0;
        for (JsonNode c : cases) {
            JsonNode a = c.get("args");
            int tp = a.get("tensor_model_parallel_size").asInt();
            MoeConfig moe = null;
            if (a.hasNonNull("num_experts")) {
                moeCases++;
                int topk = a.get("moe_router_topk").asInt();
                moe = MoeConfig.of(a.get("num_experts").asInt(), a.get("moe_ffn_hidden_size").asInt()).withRouterTopk(topk)
                        .withLayerFreq(a.get("moe_layer_freq").asText())
                        .withSharedExperts(a.path("moe_shared_expert_intermediate_size").asInt(0),
                                a.path("moe_shared_expert_gate").asBoolean(false))
                        .withRouting(topk == 1, MoeConfig.ScoreFunction.SOFTMAX, 0f);
            }
            TransformerConfig config = TransformerConfig.builder().numLayers(a.get("num_layers").asInt())
                    .hiddenSize(a.get("hidden_size").asInt()).numAttentionHeads(a.get("num_attention_heads").asInt())
                    .kvChannels(a.get("kv_channels").asInt()).numQueryGroups(a.get("num_query_groups").asInt())
                    .ffnHiddenSize(a.get("ffn_hidden_size").asInt()).swiglu(a.get("swiglu").asBoolean())
                    .normalization(Normalization.parse(a.get("normalization").asText()))
                    .untieEmbeddingsAndOutputWeights(a.get("untie_embeddings_and_output_weights").asBoolean())
                    .seqLength(a.get("seq_length").asInt()).maxPositionEmbeddings(a.get("seq_length").asInt())
                    .vocabSize(a.get("padded_vocab_size").asInt()).makeVocabSizeDivisibleBy(8)
                    .addBiasLinear(a.path("add_bias_linear").asBoolean(true)).moe(moe)
                    .positionEmbeddingType(a.hasNonNull("mtp_num_layers") || a.path("multi_latent_attention").asBoolean(false)
                            ? PositionEmbeddingType.ROPE : PositionEmbeddingType.LEARNED_ABSOLUTE)
                    .mla(a.path("multi_latent_attention").asBoolean(false) ? org.megatronj.model.MlaConfig.of(
                            a.path("q_lora_rank").asInt(0), a.get("kv_lora_rank").asInt(), a.get("qk_head_dim").asInt(),
                            a.get("qk_pos_emb_head_dim").asInt(), a.get("v_head_dim").asInt()) : null)
                    .mtp(a.hasNonNull("mtp_num_layers") ? MtpConfig.of(a.get("mtp_num_layers").asInt()) : null).build();
            mlaCases += config.mla() == null ? 0 : 1;
            assertEquals(a.get("padded_vocab_size").asInt(), config.paddedVocabSize(tp), c.get("name").asText());
            var setup = new TheoreticalMemory.Setup(tp, a.get("pipeline_model_parallel_size").asInt(),
                    a.get("virtual_pipeline_model_parallel_size").asInt(0), a.get("data_parallel_size").asInt(),
                    a.get("use_distributed_optimizer").asBoolean(), a.get("sequence_parallel").asBoolean(),
                    a.get("recompute_granularity").asText("").equals("selective"), a.get("micro_batch_size").asInt(),
                    a.get("num_microbatches").asInt(), a.path("context_parallel_size").asInt(1));
            TheoreticalMemory.Report r = TheoreticalMemory.report(config, setup);
            List<String> expected = new ArrayList<>();
            c.get("lines").forEach(l -> expected.add(l.asText()));
            assertEquals(expected, r.lines(), c.get("name").asText());
            assertEquals(c.get("weight_and_optimizer_mb").asDouble(), r.weightAndOptimizerMb(), 1e-9, c.get("name").asText());
            assertEquals(c.get("activation_mb").asDouble(), r.activationMb(), 1e-9, c.get("name").asText());
            assertEquals(c.get("total_mb").asDouble(), r.totalMb(), 1e-9, c.get("name").asText());
        }
        assertEquals(5, moeCases);
        assertEquals(2, mlaCases);
    }
}
