package org.megatronj.cli;

import org.megatronj.model.MtpConfig;
import picocli.CommandLine.Option;

/**
 * Megatron's Multi-Token Prediction flags ({@code --mtp-num-layers}, {@code --mtp-loss-scaling-factor}), part of the
 * model flags ({@link MtpConfig}).
 */
public final class MtpOptions {
    @Option(names = "--mtp-num-layers", paramLabel = "N", description = "Multi-Token Prediction depths after the decoder"
            + " (DeepSeek-V3's MTP; none by default). Each depth predicts one more token ahead; their losses are logged as"
            + " 'mtp_<k> loss' and added to the training objective.")
    Integer numLayers;

    @Option(names = "--mtp-loss-scaling-factor", paramLabel = "F", defaultValue = "0.1", description = "Weight of the"
            + " MTP depths' mean loss in the training objective (default ${DEFAULT-VALUE}).")
    float lossScalingFactor;

    /** The config, or null without {@code --mtp-num-layers} (Megatron's None; a given 0 is refused by the config). */
    MtpConfig toConfig() {
        return numLayers == null ? null : new MtpConfig(numLayers, lossScalingFactor);
    }

    /**
     * {@code --use-checkpoint-args}: Megatron forces {@code mtp_num_layers} from the checkpoint; the scaling factor, a
     * training coefficient, stays the command line's.
     */
    void takeFromCheckpoint(MtpConfig saved, java.util.function.BiConsumer<String, Object> took) {
        numLayers = saved == null ? null : saved.numLayers();
        took.accept("mtp_num_layers", numLayers == null ? "None" : numLayers);
    }
}
