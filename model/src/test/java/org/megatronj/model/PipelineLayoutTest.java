package org.megatronj.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Layer splits against Megatron-LM's own functions (make_pipeline_layout_fixtures.py), and the refusals. */
class PipelineLayoutTest {

    static JsonNode fixtures() throws IOException {
        try (InputStream in = PipelineLayoutTest.class.getResourceAsStream("pipeline_layout_fixtures.json")) {
            return new ObjectMapper().readTree(in);
        }
    }

    static PipelineLayout layoutOf(JsonNode c) {
        int layers = c.get("num_layers").asInt();
        int pp = c.get("pp").asInt();
        if (c.has("layout")) {
            return PipelineLayout.parse(c.get("layout").asText(), pp, layers);
        }
        return PipelineLayout.megatron(layers, pp, c.path("vp").asInt(1), c.has("first") ? c.get("first").asInt() : null,
                c.has("last") ? c.get("last").asInt() : null, c.path("emb").asBoolean(), c.path("loss").asBoolean());
    }

    @Test
    void everyStagesLayersAndOffsetAreMegatrons() throws IOException {
        JsonNode splits = fixtures().get("splits");
        assertEquals(16, splits.size());
        for (JsonNode split : splits) {
            PipelineLayout layout = layoutOf(split.get("case"));
            assertEquals(split.get("virtual_stages_per_rank").asInt(), layout.chunksPerStage(), split.toString());
            int virtualStages = split.get("stages").size();
            for (JsonNode stage : split.get("stages")) {
                int p = stage.get("pp_rank").asInt();
                int v = stage.get("vp_stage").asInt();
                ModelChunk chunk = layout.chunk(p, v);
                String where = split.get("case") + " rank " + p + " chunk " + v;
                assertEquals(stage.get("num_layers").asInt(), chunk.numLayers(), where);
                assertEquals(stage.get("offset").asInt(), chunk.firstLayer(), where);
                int index = v * layout.stages() + p;
                assertEquals(index == 0, chunk.preProcess(), where);
                assertEquals(index == virtualStages - 1, chunk.postProcess(), where);
            }
            // a layout string of the split gives the same split back
            assertEquals(layout, PipelineLayout.parse(layout.toLayoutString(), layout.stages(), layout.numLayers()),
                    layout.toLayoutString());
        }
    }

    @Test
    void layoutStringsUnrollAsMegatronParsesThem() throws IOException {
        JsonNode parsed = fixtures().get("parsed");
        for (var it = parsed.fields(); it.hasNext(); ) {
            var e = it.next();
            List<String> expected = new ArrayList<>();
            e.getValue().forEach(s -> expected.add(s.asText()));
            assertEquals(expected, PipelineLayout.stagesOf(e.getKey()), e.getKey());
        }
    }

    @Test
    void evenSplitIsTheDefaultAndTheOldChunkFormula() {
        PipelineLayout even = PipelineLayout.even(12, 2, 3);
        assertTrue(even.isEven());
        assertEquals(new ModelChunk(6, 2, false, false), even.chunk(1, 1));
        assertEquals(PipelineLayout.megatron(12, 2, 3, null, null, false, false), even);
        assertFalse(PipelineLayout.megatron(12, 3, 1, 2, null, false, false).isEven());
        assertEquals("Et*2|t*2|t*2|t*2L", PipelineLayout.even(8, 2, 2).toLayoutString());
    }

    @Test
    void megatronsRefusalsWithItsWords() {
        assertTrue(refusal(() -> PipelineLayout.megatron(15, 3, 2, 3, null, false, false))
                .contains("number of layers on pipeline rank 0: 3 must be divisible by the virtual pipeline parallel degree 2"));
        assertTrue(refusal(() -> PipelineLayout.megatron(12, 3, 2, 2, null, false, false))
                .contains("number of layers on pipeline rank 1: 5 must be divisible by the virtual pipeline parallel degree 2"));
        assertTrue(refusal(() -> PipelineLayout.megatron(10, 4, 1, 1, 2, false, false))
                .contains("number of layers at middle stage: 7 must be divisible by the middle pipeline model parallel size 2"));
        assertTrue(refusal(() -> PipelineLayout.megatron(10, 2, 1, 4, 4, false, false)).contains("Mismatch: 2 middle layers"));
        assertTrue(refusal(() -> PipelineLayout.megatron(10, 2, 1, 0, null, false, false))
                .contains("--decoder-first-pipeline-num-layers must be larger than 0"));
        assertTrue(refusal(() -> PipelineLayout.megatron(10, 2, 1, 4, null, true, false))
                .contains("cannot be set at the same time with --account-for-embedding-in-pipeline-split"));
        assertTrue(refusal(() -> PipelineLayout.megatron(8, 4, 1, null, null, true, false))
                .contains("--num-layers 8 + 1 (embedding/loss counted as layers) = 9 is not divisible by --pipeline-model-parallel-size 4"));
        assertTrue(refusal(() -> PipelineLayout.parse("Et*3|t*2L", 4, 5)).contains("must be divisible by pipeline_model_parallel_size"));
        assertTrue(refusal(() -> PipelineLayout.parse("Et*3|t*2", 2, 5)).contains("The last layer must be loss"));
        assertTrue(refusal(() -> PipelineLayout.parse("Et*3|t*3L", 2, 5)).contains("Number of decoder layers 6 must match num_layers 5"));
        assertTrue(refusal(() -> PipelineLayout.parse("Et*3|t*2|m|L", 2, 5)).contains("runs the MTP layers on the last virtual"
                + " stage, with the loss"));
        assertTrue(refusal(() -> PipelineLayout.parse("Et*3|t*1mtL", 2, 5)).contains("decoder layers must be placed before MTP"));
        assertEquals(PipelineLayout.parse("Et*3|t*2L", 2, 5), PipelineLayout.parse("Et*3|t*2m*2L", 2, 5));
        assertEquals(2, PipelineLayout.mtpLayers("Et*3|t*2m*2L"));
        assertTrue(refusal(() -> PipelineLayout.parse("Et*3|x*2L", 2, 5)).contains("invalid layer character 'x'"));
        assertTrue(refusal(() -> PipelineLayout.parse("Et*3||t*2|L", 2, 5)).contains("virtual pipeline stage 1 (pipeline rank 1,"
                + " chunk 0) holds no layers"));
        assertTrue(refusal(() -> PipelineLayout.parse("|Et*5|t|L", 2, 6)).contains("keeps the embedding in the first virtual stage"));
    }

    static String refusal(Runnable r) {
        return assertThrows(IllegalArgumentException.class, r::run).getMessage();
    }
}
