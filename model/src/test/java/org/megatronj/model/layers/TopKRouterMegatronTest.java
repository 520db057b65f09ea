package org.megatronj.model.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.megatronj.memory.DType;
import org.megatronj.model.MoeConfig;

/**
 * The router against Megatron-LM's own routing functions run by PyTorch ({@code make_router_fixtures.py}): the routing
 * map, the weights, the load-balancing and z losses, and the gradient of the logits through the weights and the
 * auxiliary losses.
 */
class TopKRouterMegatronTest {

    static List<JsonNode> cases() throws IOException {
        try (InputStream in = TopKRouterMegatronTest.class.getResourceAsStream("router_fixtures.json")) {
            List<JsonNode> out = new ArrayList<>();
            new ObjectMapper().readTree(in).forEach(out::add);
            return out;
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void equalsMegatronsRouter(JsonNode c) {
        int n = c.get("n").asInt();
        int e = c.get("e").asInt();
        int k = c.get("k").asInt();
        MoeConfig moe = MoeConfig.of(e, 8).withRouterTopk(k)
                .withRouting(c.get("pre").asBoolean(), MoeConfig.ScoreFunction.parse(c.get("score").asText()),
                        (float) c.get("scaling").asDouble())
                .withLoadBalancing(MoeConfig.LoadBalancing.parse(c.get("lb").asText()), (float) c.get("coeff").asDouble())
                .withZLossCoeff((float) c.get("zcoeff").asDouble())
                .withCapacity((float) c.get("capacity").asDouble(), MoeConfig.TokenDropPolicy.parse(c.get("policy").asText()),
                        c.get("pad").asBoolean())
                .withGroupLimitedRouting(c.get("groups").asInt(), c.get("group_topk").asInt());
        TopKRouter router = new TopKRouter(moe, DType.F32);
        float[] bias = c.get("bias").isEmpty() ? null : floats(c.get("bias"));
        TopKRouter.Routing r = router.route(floats(c.get("logits")), bias, n, 1, c.get("batch").asInt(), true);

        int[] map = new int[n * e];
        float[] probs = new float[n * e];
        float[] w = floats(c.get("w"));
        float[] dRowProb = new float[r.rows()];
        for (int x = 0; x < e; x++) {
            for (int row = r.expertOffset()[x]; row < r.expertOffset()[x + 1]; row++) {
                int t = r.rowToken()[row];
                map[t * e + x] = 1;
                probs[t * e + x] = r.rowProb()[row];
                dRowProb[row] = w[t * e + x];
            }
        }
        if (c.get("pad").asBoolean()) {   // which weight-0 tokens fill an expert is torch.topk's choice among ties
            int[] expectedMap = ints(c.get("map"));
            for (int x = 0; x < e; x++) {
                int rows = 0;
                for (int t = 0; t < n; t++) {
                    rows += expectedMap[t * e + x];
                }
                assertEquals(rows, r.expertOffset()[x + 1] - r.expertOffset()[x], "rows of expert " + x);
            }
        } else {
            assertArrayEquals(ints(c.get("map")), map, "routing map");
        }
        assertArrayEquals(floats(c.get("probs")), probs, 2e-6f, "weights");
        assertEquals(c.get("aux").asDouble(), r.auxLoss(), 1e-5 * Math.max(1, c.get("aux").asDouble()), "aux loss / coeff");
        assertEquals(c.get("z").asDouble(), r.zLoss(), 1e-5 * Math.max(1, c.get("z").asDouble()), "z loss / coeff");
        float[] grad = router.backward(r, dRowProb, (float) c.get("scale").asDouble(), 0, n);
        float[] expected = floats(c.get("grad"));
        float max = 0;
        for (float g : expected) {
            max = Math.max(max, Math.abs(g));
        }
        assertArrayEquals(expected, grad, 2e-6f * Math.max(1, max), "gradient of the logits");
    }

    private static float[] floats(JsonNode a) {
        float[] out = new float[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) a.get(i).asDouble();
        }
        return out;
    }

    private static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }
}
