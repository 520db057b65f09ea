package org.megatronj.model;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.megatronj.model.layers.MoeLayer;

/**
 * The auxiliary losses Megatron's training log shows for a mixture-of-experts model ({@code track_moe_metrics}):
 * {@code load_balancing_loss} (for the aux_loss and seq_aux_loss types, as Megatron's substring test picks it),
 * {@code seq_load_balancing_loss} and {@code z_loss}, each the losses over their coefficients per layer, summed over an
 * iteration's micro-batches, then scaled by 1 / micro-batches; the logged value is their mean over the MoE layers.
 */
public final class MoeMetrics {
    private MoeMetrics() {
    }

    /**
     * An iteration's losses by name: {@code averaged} over the MoE layers (the log line's), {@code perLayer} by global
     * layer index (0 for dense layers; {@code --moe-per-layer-logging}).
     */
    public record Report(Map<String, Double> averaged, Map<String, double[]> perLayer, Map<String, Double> tensorboardOnly) {
        public static final Report NONE = new Report(Map.of(), Map.of());

        /** Without values for TensorBoard alone (MTP's acceptance rates, {@link MtpMetrics}). */
        public Report(Map<String, Double> averaged, Map<String, double[]> perLayer) {
            this(averaged, perLayer, Map.of());
        }
    }

    /**
     * This rank's sums since the last call, per logged name (Megatron's order) and global layer, from the MoE layers of
     * {@code chunks}; empty for a dense model. Each layer's sums are reset.
     */
    public static Map<String, double[]> take(List<GPTModel> chunks) {
        Map<String, double[]> out = new LinkedHashMap<>();
        TransformerConfig config = chunks.getFirst().config();
        MoeConfig moe = config.moe();
        if (moe == null) {
            return out;
        }
        int layers = config.numLayers() + config.mtpNumLayers();   // the MTP depths' layers numbered after the decoder's
        double[] aux = new double[layers];
        double[] z = new double[layers];
        for (GPTModel chunk : chunks) {
            for (MoeLayer layer : chunk.moeLayers()) {
                aux[layer.layerNumber()] += layer.takeAuxLoss();
                z[layer.layerNumber()] += layer.takeZLoss();
            }
        }
        MoeConfig.LoadBalancing type = moe.loadBalancingType();
        boolean seq = type == MoeConfig.LoadBalancing.SEQ_AUX_LOSS;
        if (type == MoeConfig.LoadBalancing.AUX_LOSS || seq) {
            out.put("load_balancing_loss", seq ? new double[layers] : aux);
        }
        if (seq) {
            out.put("seq_load_balancing_loss", aux);
        }
        if (moe.zLossCoeff() > 0) {
            out.put("z_loss", z);
        }
        return out;
    }

    /** The report of per-layer sums: each times 1 / micro-batches, and their mean over the model's MoE layers. */
    public static Report report(Map<String, double[]> sums, TransformerConfig config, int microBatches) {
        int layers = 0;
        for (int l = 0; l < config.numLayers(); l++) {
            layers += config.isMoeLayer(l) ? 1 : 0;
        }
        layers += config.mtpLayersAreMoe() ? config.mtpNumLayers() : 0;   // Megatron counts the MTP MoE layers too
        Map<String, Double> averaged = new LinkedHashMap<>();
        Map<String, double[]> perLayer = new LinkedHashMap<>();
        for (Map.Entry<String, double[]> e : sums.entrySet()) {
            double[] scaled = new double[e.getValue().length];
            double total = 0;
            for (int l = 0; l < scaled.length; l++) {
                scaled[l] = e.getValue()[l] / microBatches;
                total += scaled[l];
            }
            perLayer.put(e.getKey(), scaled);
            averaged.put(e.getKey(), total / Math.max(layers, 1));
        }
        return new Report(averaged, perLayer);
    }
}
