package org.megatronj.parallel.train;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;

/**
 * The text of Megatron's training log (training.py {@code training_log} and
 * {@code evaluate_and_print_results}), so scripts written for Megatron's logs read ours.
 */
public final class TrainingLog {
    private TrainingLog() {
    }

    /**
     * The values of one iteration log line; losses and times are averages over the log interval.
     * {@code throughput}: TFLOP/s per rank with {@code --log-throughput}, {@code numZeros} with
     * {@code --log-num-zeros-in-grad}, {@code paramsNorm} with {@code --log-params-norm}; else NaN (not printed).
     */
    public record IterationStats(LocalDateTime time, long iteration, long trainIters, long consumedSamples,
                                 double elapsedMillisPerIteration, double throughput, double learningRate, int globalBatchSize,
                                 double lmLoss, java.util.Map<String, Double> moeLosses, double lossScale, double gradNorm,
                                 double numZeros, double paramsNorm,
                                 int skippedIterations, int nanIterations) {
    }

    /** Python's {@code datetime.now().strftime('%Y-%m-%d %H:%M:%S.%f')}. */
    private static final DateTimeFormatter TIMESTAMP = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSSSSS", Locale.ROOT);

    /**
     * One line, after Megatron's local-time stamp, e.g. {@code  [2026-12-07 19:46:01.123456] iteration       10/     100 |
     * consumed samples:           80 | elapsed time per
     * iteration (ms): 12.3 | learning rate: 1.000000E-03 | global batch size:     8 | lm loss: 1.023456E+01 |
     * loss scale: 1.0 | grad norm: 1.234 | number of skipped iterations:   0 | number of nan iterations:   0 |}.
     */
    public static String iterationLine(IterationStats s) {
        StringBuilder b = new StringBuilder();
        b.append(" [").append(TIMESTAMP.format(s.time())).append("]");
        b.append(String.format(Locale.ROOT, " iteration %8d/%8d |", s.iteration(), s.trainIters()));
        b.append(String.format(Locale.ROOT, " consumed samples: %12d |", s.consumedSamples()));
        b.append(" elapsed time per iteration (ms): ").append(pythonF(s.elapsedMillisPerIteration(), 1)).append(" |");
        if (!Double.isNaN(s.throughput())) {
            b.append(" throughput per GPU (TFLOP/s/GPU): ").append(pythonF(s.throughput(), 1)).append(" |");
        }
        b.append(" learning rate: ").append(pythonE(s.learningRate(), 6)).append(" |");
        b.append(String.format(Locale.ROOT, " global batch size: %5d |", s.globalBatchSize()));
        // Megatron prints the loss only when its average over the advanced iterations is > 0: an interval in which every
        // iteration was skipped (lmLoss NaN here, 0 there) has none.
        if (s.lmLoss() > 0.0) {
            b.append(" lm loss: ").append(pythonE(s.lmLoss(), 6)).append(" |");
        }
        s.moeLosses().forEach((name, value) -> {   // load_balancing_loss, z_loss, ...: the same rule
            if (value > 0.0) {
                b.append(' ').append(name).append(": ").append(pythonE(value, 6)).append(" |");
            }
        });
        b.append(" loss scale: ").append(pythonF(s.lossScale(), 1)).append(" |");
        if (!Double.isNaN(s.gradNorm())) {
            b.append(" grad norm: ").append(pythonF(s.gradNorm(), 3)).append(" |");
        }
        if (!Double.isNaN(s.numZeros())) {
            b.append(" num zeros: ").append(pythonF(s.numZeros(), 1)).append(" |");
        }
        if (!Double.isNaN(s.paramsNorm())) {
            b.append(" params norm: ").append(pythonF(s.paramsNorm(), 3)).append(" |");
        }
        b.append(String.format(Locale.ROOT, " number of skipped iterations: %3d |", s.skippedIterations()));
        b.append(String.format(Locale.ROOT, " number of nan iterations: %3d |", s.nanIterations()));
        return b.toString();
    }

    /**
     * The three-line validation block: dashes, {@code  validation loss at <where> | lm loss value: ... | lm loss PPL: ... | },
     * dashes. {@code where} is e.g. {@code iteration 100} or {@code iteration 100 on validation set}.
     * Perplexity is {@code exp(min(20, loss))}, as Megatron caps it.
     */
    public static String validationBlock(String where, double lmLoss) {
        String line = " validation loss at " + where + " | "
                + "lm loss value: " + pythonE(lmLoss, 6) + " | "
                + "lm loss PPL: " + pythonE(Math.exp(Math.min(20, lmLoss)), 6) + " | ";
        String dashes = "-".repeat(line.length() + 1);
        return dashes + System.lineSeparator() + line + System.lineSeparator() + dashes;
    }

    /**
     * Python's {@code '{:.NE}'.format(v)}: a two-digit signed exponent ({@code 1.000000E-03}), {@code NAN}, {@code INF}.
     * Python rounds the double's exact binary value half to even; Java's {@code %E} rounds its shortest decimal
     * form half up, which differs on near-ties ({@code 1.0000005e-3}: Python 1.000000E-03, Java 1.000001E-03).
     */
    public static String pythonE(double v, int digits) {
        if (Double.isNaN(v)) {
            return "NAN";
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? "INF" : "-INF";
        }
        String sign = v < 0 || (v == 0 && 1 / v < 0) ? "-" : "";
        if (v == 0) {
            return sign + "0." + "0".repeat(digits) + "E+00";
        }
        BigDecimal d = new BigDecimal(Math.abs(v)).round(new MathContext(digits + 1, RoundingMode.HALF_EVEN));
        int exponent = d.precision() - d.scale() - 1;
        String mantissa = d.unscaledValue().toString();
        mantissa = (mantissa + "0".repeat(digits + 1)).substring(0, digits + 1);
        return sign + mantissa.charAt(0) + (digits > 0 ? "." + mantissa.substring(1) : "") + "E" + (exponent < 0 ? "-" : "+")
                + (Math.abs(exponent) < 10 ? "0" : "") + Math.abs(exponent);
    }

    /**
     * Python's {@code '{:.Nf}'.format(v)}: the exact binary value rounded half to even, every integer digit
     * ({@code 2^60} is 1152921504606846976.0, where Java's {@code %.1f} writes 1152921504606847000.0, and
     * {@code %.3f} of 1.2345 writes 1.235 where Python writes 1.234).
     */
    public static String pythonF(double v, int digits) {
        if (Double.isNaN(v)) {
            return "nan";
        }
        if (Double.isInfinite(v)) {
            return v > 0 ? "inf" : "-inf";
        }
        String s = new BigDecimal(v).setScale(digits, RoundingMode.HALF_EVEN).toPlainString();
        boolean negative = v < 0 || (v == 0 && 1 / v < 0);
        return negative && !s.startsWith("-") ? "-" + s : s;   // BigDecimal has no negative zero; Python keeps the sign
    }
}
