package org.megatronj.parallel.train;

import org.megatronj.io.tensorboard.EventFileWriter;
import org.megatronj.memory.MemoryStats;

import java.nio.file.Path;
import java.util.Map;

/**
 * What Megatron's {@code training_log} and {@code evaluate_and_print_results} write to TensorBoard
 * ({@code --tensorboard-dir}), under Megatron's tags: per iteration (every
 * {@code --tensorboard-log-interval}) the learning rate, batch size, {@code lm loss}, loss scale
 * (unless {@code --no-log-loss-scale-to-tensorboard}), world size ({@code --log-world-size-to-tensorboard})
 * grad norm and params norm ({@code --log-params-norm}), each also "vs samples" (stepped by the consumed samples),
 * and the memory ({@code --log-memory-to-tensorboard}: {@code mem-reserved-bytes}, {@code mem-allocated-bytes},
 * {@code mem-max-allocated-bytes}, {@code mem-allocated-count});
 * at each log line with
 * {@code --log-timers-to-tensorboard} the iteration time, the throughput (with {@code --log-throughput})
 * and the timers ({@code <name>-time}, the maximum over ranks in seconds); at each evaluation
 * {@code lm loss validation} (and its perplexity with {@code --log-validation-ppl-to-tensorboard}).
 * Megatron's args-as-text summaries are not written.
 */
public final class TensorBoardLog implements AutoCloseable {

    /**
     * The {@code --tensorboard-*} and {@code --log-*-to-tensorboard} flags.
     *
     * @param worldSize the run's ranks, for {@code world-size}
     * @param moePerLayer {@code --moe-per-layer-logging}: each layer's MoE losses besides their average
     */
    public record Config(Path dir, int logInterval, boolean logTimers, boolean logValidationPpl, boolean logLossScale,
                         boolean logWorldSize, int worldSize, boolean logMemory, boolean moePerLayer) {
        public Config {
            if (logInterval < 1) {
                throw new IllegalArgumentException("--tensorboard-log-interval must be >= 1, got " + logInterval);
            }
        }
    }

    private final Config config;
    private final EventFileWriter writer;

    TensorBoardLog(Config config) {
        this.config = config;
        this.writer = EventFileWriter.create(config.dir());
    }

    private void both(String tag, double value, long iteration, long consumedSamples) {
        writer.addScalar(tag, value, iteration);
        writer.addScalar(tag + " vs samples", value, consumedSamples);
    }

    /**
     * One training iteration; a NaN grad norm (a skipped step), NaN zeros (a skipped step, or without
     * {@code --log-num-zeros-in-grad}), a NaN params norm (without {@code --log-params-norm}) and a non-finite loss are
     * left out; {@code memory} (null when not known) with {@code --log-memory-to-tensorboard}, by iteration only.
     */
    void iteration(long iteration, long consumedSamples, double learningRate, int batchSize, double loss, double lossScale,
                   double gradNorm, double numZeros, double paramsNorm, MemoryStats memory) {
        if (iteration % config.logInterval() != 0) {
            return;
        }
        both("learning-rate", learningRate, iteration, consumedSamples);
        both("batch-size", batchSize, iteration, consumedSamples);
        if (Double.isFinite(loss)) {
            both("lm loss", loss, iteration, consumedSamples);
        }
        if (config.logLossScale()) {
            both("loss-scale", lossScale, iteration, consumedSamples);
        }
        if (config.logWorldSize()) {
            both("world-size", config.worldSize(), iteration, consumedSamples);
        }
        if (!Double.isNaN(gradNorm)) {
            both("grad-norm", gradNorm, iteration, consumedSamples);
        }
        if (!Double.isNaN(numZeros)) {
            both("num-zeros", numZeros, iteration, consumedSamples);
        }
        if (!Double.isNaN(paramsNorm)) {
            both("params-norm", paramsNorm, iteration, consumedSamples);
        }
        if (config.logMemory() && memory != null) {
            writer.addScalar("mem-reserved-bytes", memory.reservedBytes(), iteration);
            writer.addScalar("mem-allocated-bytes", memory.allocatedBytes(), iteration);
            writer.addScalar("mem-max-allocated-bytes", memory.maxAllocatedBytes(), iteration);
            writer.addScalar("mem-allocated-count", memory.allocations(), iteration);
        }
    }

    /**
     * The mixture-of-experts losses of one iteration by name ({@code load_balancing_loss}, {@code z_loss}, ...), every
     * iteration and by iteration only, as Megatron's MoE metrics tracker writes them.
     */
    void moeLosses(long iteration, org.megatronj.model.MoeMetrics.Report losses) {
        losses.averaged().forEach((name, value) -> writer.addScalar(name, value, iteration));
        losses.tensorboardOnly().forEach((name, value) -> writer.addScalar(name, value, iteration));   // MTP's acceptance
        if (config.moePerLayer()) {   // --moe-per-layer-logging: moe/<name>_layer_<i> for every layer, dense ones 0
            losses.perLayer().forEach((name, values) -> {
                for (int l = 0; l < values.length; l++) {
                    writer.addScalar("moe/" + name + "_layer_" + l, values[l], iteration);
                }
            });
        }
    }

    /**
     * At a log line: with {@code --log-timers-to-tensorboard} the seconds per iteration, the throughput
     * (NaN without {@code --log-throughput}) and the timers' maxima over ranks (of each rank's milliseconds per iteration,
     * written in seconds, as Megatron's timers are); then everything is flushed.
     */
    void logLine(long iteration, double secondsPerIteration, double throughput, Map<String, double[]> timersMillis) {
        if (config.logTimers()) {
            writer.addScalar("iteration-time", secondsPerIteration, iteration);
            if (!Double.isNaN(throughput)) {
                writer.addScalar("throughput", throughput, iteration);
            }
            timersMillis.forEach((name, perRank) -> writer.addScalar(name + "-time", Timers.minMax(perRank)[1] / 1000.0,
                    iteration));
        }
        writer.flush();
    }

    /** An evaluation of the validation split. */
    void validation(long iteration, long consumedSamples, double loss) {
        both("lm loss validation", loss, iteration, consumedSamples);
        if (config.logValidationPpl()) {
            both("lm loss validation ppl", Math.exp(Math.min(20, loss)), iteration, consumedSamples);
        }
        writer.flush();
    }

    @Override
    public void close() {
        writer.close();
    }
}
