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

    /**
     * This rank's acceptance counts since the last call from {@code chunks}, {@code [correct..., counted...]} by depth
     * ({@link GPTModel#takeMtpAcceptanceCounts}), then reset; zeros where no depth runs, none without MTP.
     */
    public static double[] takeAcceptanceCounts(List<GPTModel> chunks) {
        double[] counts = new double[2 * chunks.getFirst().config().mtpNumLayers()];
        for (GPTModel chunk : chunks) {
            double[] local = chunk.takeMtpAcceptanceCounts();
            for (int i = 0; i < local.length; i++) {
                counts[i] += local[i];
            }
        }
        return counts;
    }

    /**
     * Megatron's acceptance rates for TensorBoard ({@code mtp_<k>_acceptance_rate} of the iteration and
     * {@code mtp_<k>_cumulative_acceptance_rate} since this process started, in percent of the counted positions whose
     * prediction is the label; not in the log line). The cumulative counts are this object's: a resumed run starts them
     * again, as Megatron's process-local tracker does.
     */
    public static final class Acceptance {
        private double[] cumulative = new double[0];

        /** {@code report} with the rates of the iteration's {@code counts} (summed over the ranks) added for TensorBoard. */
        public MoeMetrics.Report addTo(MoeMetrics.Report report, double[] counts) {
            int depths = counts.length / 2;
            if (depths == 0) {
                return report;
            }
            if (cumulative.length != counts.length) {
                cumulative = new double[counts.length];
            }
            Map<String, Double> rates = new LinkedHashMap<>(report.tensorboardOnly());
            for (int k = 0; k < depths; k++) {
                cumulative[k] += counts[k];
                cumulative[depths + k] += counts[depths + k];
                rates.put("mtp_" + (k + 1) + "_acceptance_rate", 100.0 * counts[k] / Math.max(counts[depths + k], 1));
                rates.put("mtp_" + (k + 1) + "_cumulative_acceptance_rate",
                        100.0 * cumulative[k] / Math.max(cumulative[depths + k], 1));
            }
            return new MoeMetrics.Report(report.averaged(), report.perLayer(), rates);
        }
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
        return new MoeMetrics.Report(averaged, report.perLayer(), report.tensorboardOnly());
    }
}
