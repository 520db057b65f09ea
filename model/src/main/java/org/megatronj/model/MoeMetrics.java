package org.megatronj.model;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.megatronj.model.layers.MoeLayer;

/**
 * The auxiliary losses Megatron's training log shows for a mixture-of-experts model ({@code track_moe_metrics}):
 * {@code load_balancing_loss} (for the aux_loss and seq_aux_loss types, as Megatron's substring test picks it),
 * {@code seq_load_balancing_loss} and {@code z_loss}, each the losses over their coefficients summed over the MoE
 * layers and an iteration's micro-batches, then scaled by 1 / micro-batches and divided by the MoE layers.
 */
public final class MoeMetrics {
    private MoeMetrics() {
    }

    /**
     * This rank's sums since the last call, per logged name (Megatron's order), from the MoE layers of
     * {@code chunks}; empty for a dense model. Each layer's sums are reset.
     */
    public static Map<String, Double> take(List<GPTModel> chunks) {
        Map<String, Double> out = new LinkedHashMap<>();
        MoeConfig moe = chunks.getFirst().config().moe();
        if (moe == null) {
            return out;
        }
        double aux = 0;
        double z = 0;
        for (GPTModel chunk : chunks) {
            for (MoeLayer layer : chunk.moeLayers()) {
                aux += layer.takeAuxLoss();
                z += layer.takeZLoss();
            }
        }
        MoeConfig.LoadBalancing type = moe.loadBalancingType();
        boolean seq = type == MoeConfig.LoadBalancing.SEQ_AUX_LOSS;
        if (type == MoeConfig.LoadBalancing.AUX_LOSS || seq) {
            out.put("load_balancing_loss", seq ? 0.0 : aux);
        }
        if (seq) {
            out.put("seq_load_balancing_loss", aux);
        }
        if (moe.zLossCoeff() > 0) {
            out.put("z_loss", z);
        }
        return out;
    }

    /** The logged values: each sum times 1 / micro-batches over the model's MoE layers. */
    public static Map<String, Double> scale(Map<String, Double> sums, TransformerConfig config, int microBatches) {
        int layers = 0;
        for (int l = 0; l < config.numLayers(); l++) {
            layers += config.isMoeLayer(l) ? 1 : 0;
        }
        Map<String, Double> out = new LinkedHashMap<>();
        for (Map.Entry<String, Double> e : sums.entrySet()) {
            out.put(e.getKey(), e.getValue() / microBatches / Math.max(layers, 1));
        }
        return out;
    }
}
