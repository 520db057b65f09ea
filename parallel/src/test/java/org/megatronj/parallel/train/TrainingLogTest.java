package org.megatronj.parallel.train;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainingLogTest {
    @Test
    void iterationLineMatchesMegatron() {
        var s = new TrainingLog.IterationStats(java.time.LocalDateTime.of(2026, 12, 7, 9, 5, 1, 23_456_000), 10, 100, 80, 12.3,
                Double.NaN, 1e-3, 8, 10.23456, java.util.Map.of(), 1.0, 1.2344, Double.NaN, Double.NaN, 0, 0);
        assertEquals(" [2026-12-07 09:05:01.023456] iteration       10/     100 | consumed samples:           80 |"
                + " elapsed time per iteration (ms): 12.3 |"
                + " learning rate: 1.000000E-03 | global batch size:     8 | lm loss: 1.023456E+01 | loss scale: 1.0 |"
                + " grad norm: 1.234 | number of skipped iterations:   0 | number of nan iterations:   0 |",
                TrainingLog.iterationLine(s));
    }

    @Test
    void validationBlockMatchesMegatron() {
        String block = TrainingLog.validationBlock("iteration 100", 2.0);
        String line = " validation loss at iteration 100 | lm loss value: 2.000000E+00 | lm loss PPL: 7.389056E+00 | ";
        String dashes = "-".repeat(line.length() + 1);
        assertEquals(List.of(dashes, line, dashes), block.lines().toList());
        // perplexity is capped at exp(20)
        assertEquals(true, TrainingLog.validationBlock("x", 50).contains("lm loss PPL: 4.851652E+08 |"));
    }

    @Test
    void pythonExponentFormat() {
        assertEquals("1.500000E+100", TrainingLog.pythonE(1.5e100, 6));
        assertEquals("0.000000E+00", TrainingLog.pythonE(0, 6));
        assertEquals("NAN", TrainingLog.pythonE(Double.NaN, 6));
    }

    /** Python rounds the exact binary value half to even; Java's Formatter rounds the shortest decimal form half up. */
    @Test
    void numbersAreRoundedAsPythonFormatsThem() {
        assertEquals("1.000000E-03", TrainingLog.pythonE(1.0000005e-3, 6));   // Java's %.6E: 1.000001E-03
        assertEquals("1.234", TrainingLog.pythonF(1.2345, 3));                // Java's %.3f: 1.235
        assertEquals("0.12", TrainingLog.pythonF(0.125, 2));                  // an exact tie goes to even
        assertEquals("1152921504606846976.0", TrainingLog.pythonF(Math.pow(2, 60), 1));   // Java: ...847000.0
        assertEquals("-0.0", TrainingLog.pythonF(-0.04, 1));
        assertEquals("-1.500000E-07", TrainingLog.pythonE(-1.5e-7, 6));
        assertEquals("9.999999E+99", TrainingLog.pythonE(9.999999e99, 6));
        assertEquals("1.000000E+100", TrainingLog.pythonE(9.9999999e99, 6));   // rounding carries into the exponent
        var s = new TrainingLog.IterationStats(java.time.LocalDateTime.now(), 1, 1, 8, 0.05, 95.04, 1e-3, 8, 2.0, java.util.Map.of(),
                Math.pow(2, 60), 1.2345, 71, 31.6228, 0, 0);
        assertTrue(TrainingLog.iterationLine(s).contains("(ms): 0.1 | throughput per GPU (TFLOP/s/GPU): 95.0 | learning rate:"),
                TrainingLog.iterationLine(s));   // 0.05 < a tie; --log-throughput's field where Megatron puts it
        assertTrue(TrainingLog.iterationLine(s).contains("| loss scale: 1152921504606846976.0 | grad norm: 1.234 | num zeros: 71.0 | params norm: 31.623 |"),
                TrainingLog.iterationLine(s));
    }

    @Test
    void timersPrintMegatronsMinMaxBlock() {
        Timers timers = new Timers(1);
        timers.timer("forward-backward", 1).start();
        timers.timer("forward-backward", 1).stop();
        timers.timer("batch-generator", 2).start();   // above the level: disabled, never printed
        String out = timers.log(List.of("forward-backward", "batch-generator"), 1);
        List<String> lines = out.lines().toList();
        assertEquals("(min, max) time across ranks (ms):", lines.get(0));
        assertEquals(2, lines.size());
        assertEquals(true, lines.get(1).startsWith("    forward-backward ...............................: ("), lines.get(1));
    }

    /** Megatron's MoE losses follow the lm loss, each printed as the losses are, and only when above 0. */
    @Test
    void moeLossesFollowTheLmLoss() {
        java.util.Map<String, Double> moe = new java.util.LinkedHashMap<>();
        moe.put("load_balancing_loss", 1.0123456);
        moe.put("seq_load_balancing_loss", 0.0);
        moe.put("z_loss", 2.5e-3);
        var s = new TrainingLog.IterationStats(java.time.LocalDateTime.now(), 1, 1, 8, 1.0, Double.NaN, 1e-3, 8, 2.0, moe,
                1.0, 1.0, Double.NaN, Double.NaN, 0, 0);
        assertTrue(TrainingLog.iterationLine(s).contains("| lm loss: 2.000000E+00 | load_balancing_loss: 1.012346E+00 |"
                + " z_loss: 2.500000E-03 | loss scale: 1.0 |"), TrainingLog.iterationLine(s));
    }
}
