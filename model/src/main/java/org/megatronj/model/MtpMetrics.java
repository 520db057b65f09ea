package org.megatronj.model;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The Multi-Token Prediction losses Megatron's training log shows ({@code MTPLossLoggingHelper.track_mtp_metrics}):
 * {@code mtp_<k> loss} for depth k, each depth's micro-batch mean losses summed over the iteration, times
 * 1 / micro-batches (and averaged over the data-parallel ranks by the caller), after the MoE losses in the log line and
 * under the same name in TensorBoard.
 */
public final class MtpMetrics {
    private MtpMetrics() {
    }

    /** The name Megatron logs depth {@code k}'s loss under (1-based). */
    public static String lossName(int k) {
        return "mtp_" + k + " loss";
    }

    /**
     * This rank's per-depth sums since the last call from {@code chunks} (only the last chunk has MTP depths), then
     * reset; {@code --mtp-num-layers} entries on every rank (zeros where no depth runs), none without MTP.
     */
    public static double[] take(List<GPTModel> chunks) {
        double[] sums = new double[chunks.getFirst().config().mtpNumLayers()];
        for (GPTModel chunk : chunks) {
            double[] local = chunk.takeMtpLossSums();
            for (int k = 0; k < local.length; k++) {
                sums[k] += local[k];
            }
        }
        return sums;
    }

    /** {@code report} with each depth's {@code mtp_<k> loss} (its sum over {@code microBatches}) after the MoE losses. */
    public static MoeMetrics.Report withLosses(MoeMetrics.Report report, double[] sums, int microBatches) {
        if (sums.length == 0) {
            return report;
        }
        Map<String, Double> averaged = new LinkedHashMap<>(report.averaged());
        for (int k = 0; k < sums.length; k++) {
            averaged.put(lossName(k + 1), sums[k] / Math.max(microBatches, 1));
        }
        return new MoeMetrics.Report(averaged, report.perLayer());
    }
}
