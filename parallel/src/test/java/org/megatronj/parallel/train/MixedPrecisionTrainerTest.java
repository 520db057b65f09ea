package org.megatronj.parallel.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Precision;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.AdamW;
import org.megatronj.model.optim.DecayStyle;
import org.megatronj.model.optim.DynamicLossScaler;
import org.megatronj.model.optim.LossScaler;
import org.megatronj.model.optim.Optimizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The trainer with {@code --bf16} and {@code --fp16}: bf16 tracks the fp32 loss curve, fp16's
 * dynamic loss scaler skips overflowing iterations with Megatron's hysteresis and window, and a
 * resumed mixed-precision run repeats the uninterrupted one bit for bit.
 */
class MixedPrecisionTrainerTest {
    private static final int VOCAB = 40;
    private static final int SEQ = 16;
    private static final Pattern SCALE = Pattern.compile("loss scale: ([0-9.]+) \\|");
    private static final Pattern SKIPPED = Pattern.compile("number of skipped iterations: +([0-9]+) \\|");
    private static final Pattern NAN = Pattern.compile("number of nan iterations: +([0-9]+) \\|");
    private static final Pattern GRAD_NORM = Pattern.compile("grad norm: ([0-9.]+) \\|");

    @TempDir
    Path dir;

    private static TransformerConfig model() {
        return TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4).seqLength(SEQ)
                .maxPositionEmbeddings(SEQ).vocabSize(VOCAB).makeVocabSizeDivisibleBy(8)
                .hiddenDropout(0.1f).attentionDropout(0f).build();
    }

    private static TrainingConfig config(long iters, Path save, Path load, long exitInterval) {
        return new TrainingConfig(BatchConfig.of(2, 4), ScheduleConfig.iterations(iters, 3e-3, 3e-4, DecayStyle.COSINE, 2),
                OptimizerConfig.defaults(), new LoggingConfig(1, 0, 0, null, 0),
                new CheckpointConfig(save, 0, load, false, false, false), new ExitConfig(exitInterval, 0, true), 42);
    }

    /** One run's losses, log lines, final optimizer/scheduler counters and final weights (F32 main, compute copy; flat). */
    record Run(TrainingResult result, List<String> log, long optimizerSteps, long schedulerSteps, float[] mainWeights,
               float[] computeWeights) {
        List<Double> scales() {
            return values(SCALE);
        }

        List<Double> skipped() {
            return values(SKIPPED);
        }

        List<Double> values(Pattern p) {
            List<Double> out = new ArrayList<>();
            for (String line : log) {
                Matcher m = p.matcher(line);
                if (line.contains("] iteration ") && m.find()) {
                    out.add(Double.parseDouble(m.group(1)));
                }
            }
            return out;
        }
    }

    /** The scalar CPU kernels, as GptTrainerTest: bit-exact repetition needs a fixed reduction order. */
    private static Run run(TrainingConfig config, Precision precision, Supplier<LossScaler> scaler) {
        return run(config, precision, scaler, true);
    }

    /**
     * With {@code fold} false, AdamW sits behind a plain {@link Optimizer}, so the ModelOptimizer
     * scales the gradients to clip them, steps and casts the compute copy in separate passes.
     */
    private static Run run(TrainingConfig config, Precision precision, Supplier<LossScaler> scaler, boolean fold) {
        TransformerConfig mc = model();
        long modelSeed = config.checkpoint().load() == null ? config.seed()
                : TrainingCheckpointer.savedRngStream(config.checkpoint().load()).orElse(config.seed());
        List<String> log = new ArrayList<>();
        try (Backend backend = new CpuBackend(2, false); GPTModel gpt = new GPTModel(mc, backend, modelSeed, precision);
             GptTraining.ModelOptimizer opt = fold ? GptTraining.optimizer(config.optimizer(), gpt, scaler.get())
                     : new GptTraining.ModelOptimizer("adam", new Unfused(adam(config.optimizer(), gpt)), gpt, scaler.get())) {
            var ckpt = new TrainingCheckpointer(new ObjectMapper().valueToTree(mc), null);
            Trainer t = new Trainer(config, GptTraining.model(gpt), opt, new PatternSource(VOCAB, SEQ, 500, 1), null, null,
                    ckpt, null, line -> {
                        if (line.contains("] iteration ")) {   // the iteration lines, one per iteration
                            log.add(line);
                        }
                    });
            t.loadCheckpoint();
            TrainingResult r = t.train();
            return new Run(r, log, opt.stepCount(), t.scheduler().numSteps(), gpt.parameterStore().flatData().toFloatArray(),
                    gpt.parameterStore().flatCompute().toFloatArray());
        }
    }

    private static AdamW adam(OptimizerConfig c, GPTModel gpt) {
        return new AdamW(gpt.parameters(), gpt.backend(), (float) c.adamBeta1(), (float) c.adamBeta2(), (float) c.adamEps(),
                (float) c.weightDecay());
    }

    /** AdamW seen only as an {@link Optimizer}: what ModelOptimizer does for SGD, without the folding. */
    private record Unfused(AdamW adam) implements Optimizer, AutoCloseable {
        @Override
        public void step(float lr) {
            adam.step(lr);
        }

        @Override
        public Map<String, Tensor> stateTensors() {
            return adam.stateTensors();
        }

        @Override
        public long stepCount() {
            return adam.stepCount();
        }

        @Override
        public void setWeightDecay(float weightDecay) {
            adam.setWeightDecay(weightDecay);
        }

        @Override
        public void setDecoupledLr(float lr) {
            adam.setDecoupledLr(lr);
        }

        @Override
        public void setStepCount(long steps) {
            adam.setStepCount(steps);
        }

        @Override
        public void close() {
            adam.close();
        }
    }

    /**
     * AdamW with the clip's scaling and the cast into the compute copy folded into its step gives
     * the losses and the weights (main and compute copy) of the separate passes bit for bit, in
     * fp32, bf16 and fp16 (skipped iterations included), with a clip that binds on most iterations.
     */
    @Test
    void foldedClipAndCastRepeatTheSeparatePassesBitForBit() {
        OptimizerConfig tightClip = new OptimizerConfig(OptimizerType.ADAM, 0.01, 0.9, 0.999, 1e-8, 0.9, 0.05);
        TrainingConfig base = config(12, null, null, 0);
        TrainingConfig config = new TrainingConfig(base.batch(), base.schedule(), tightClip, base.logging(), base.checkpoint(),
                base.exit(), base.seed());
        for (Precision p : new Precision[] {Precision.FP32, Precision.BF16, Precision.FP16}) {
            Supplier<LossScaler> scaler = p == Precision.FP16 ? () -> new DynamicLossScaler(Math.pow(2, 22), 1, 3, 2) : () -> null;
            Run folded = run(config, p, scaler, true);
            Run separate = run(config, p, scaler, false);
            List<Double> expected = separate.result().iterationLosses();
            List<Double> actual = folded.result().iterationLosses();
            assertEquals(expected.size(), actual.size());
            for (int i = 0; i < expected.size(); i++) {
                assertEquals(Double.doubleToRawLongBits(expected.get(i)), Double.doubleToRawLongBits(actual.get(i)),
                        p + " iteration " + (i + 1) + ": " + expected + " vs " + actual);
            }
            assertArrayEquals(separate.mainWeights(), folded.mainWeights(), p + " main weights");
            assertArrayEquals(separate.computeWeights(), folded.computeWeights(), p + " compute weights");
            assertEquals(separate.log().size(), folded.log().size());
            long clipped = separate.values(GRAD_NORM).stream().filter(n -> n > 0.05).count();
            assertTrue(clipped >= 6, p + ": the clip binds (" + separate.values(GRAD_NORM) + ")");
        }
    }

    /**
     * 40 iterations of bf16 against fp32 from the same initial weights and data. bf16 keeps 8
     * significant bits, so each rounded weight and activation is off by up to 2^-9 = 0.2%
     * relative. The loss is a sum over tokens of log-softmax terms of logits of order 1, so a
     * 0.2% error on the logits moves a batch's mean loss by a few 1e-3 at most (the errors of
     * different elements largely cancel), and Adam, whose update barely depends on the gradient's
     * magnitude, keeps the two runs' weights close. Measured on this model: 1e-3 at most, 3e-4 on
     * average, while the loss falls from 3.70 to 2.58. We allow 1e-2 per iteration and 3e-3 on
     * average (the bf16 rounding bound with a 10x margin over the measurement), and require the
     * same descent.
     */
    @Test
    void bf16TracksTheFp32LossCurve() {
        List<Double> fp32 = run(config(40, null, null, 0), Precision.FP32, () -> null).result().iterationLosses();
        Run bf16 = run(config(40, null, null, 0), Precision.BF16, () -> null);
        List<Double> losses = bf16.result().iterationLosses();
        assertEquals(fp32.size(), losses.size());
        double sum = 0;
        double max = 0;
        for (int i = 0; i < losses.size(); i++) {
            double d = Math.abs(losses.get(i) - fp32.get(i));
            sum += d;
            max = Math.max(max, d);
        }
        assertTrue(max < 1e-2 && sum / losses.size() < 3e-3,
                "bf16 vs fp32: max " + max + ", mean " + sum / losses.size() + "\nfp32 " + fp32 + "\nbf16 " + losses);
        assertTrue(losses.getLast() < fp32.getFirst() - 0.5, "bf16 loss fell: " + losses);
        assertTrue(bf16.scales().stream().allMatch(s -> s == 1.0), "bf16 has no loss scaling: " + bf16.scales());
        assertTrue(bf16.skipped().stream().allMatch(s -> s == 0.0), bf16.log().getLast());
        assertFalse(losses.equals(fp32), "bf16 actually computes in bf16");
    }

    /**
     * fp16 from a loss scale of 2^40: the first backward overflows fp16 (max 65504), so
     * iterations are skipped while the scale comes down, halving from the second overflow on
     * (hysteresis 2); then the run trains, and after each window of 5 clean iterations the scale
     * doubles until it overflows again. The scale in every log line equals Megatron's
     * DynamicGradScaler fed the same skip pattern; skipped iterations advance neither the
     * optimizer nor the learning-rate schedule, and their losses (finite: the loss is computed in
     * fp32 and unscaled) do not count as nan iterations.
     */
    @Test
    void fp16DynamicLossScalingSkipsOverflowsAndRecovers() {
        double initial = Math.pow(2, 40);
        Run r = run(config(45, null, null, 0), Precision.FP16, () -> new DynamicLossScaler(initial, 1, 5, 2));
        List<Double> scales = r.scales();
        List<Double> skipped = r.skipped();
        assertEquals(45, scales.size(), String.join("\n", r.log()));
        DynamicLossScaler megatron = new DynamicLossScaler(initial, 1, 5, 2);
        int skips = 0;
        int growths = 0;
        for (int i = 0; i < scales.size(); i++) {
            boolean skip = skipped.get(i) == 1.0;
            double before = megatron.scale();
            megatron.update(skip);
            skips += skip ? 1 : 0;
            growths += megatron.scale() > before ? 1 : 0;
            assertEquals(megatron.scale(), scales.get(i), "iteration " + (i + 1) + ": " + r.log().get(i));
        }
        assertTrue(skipped.get(0) == 1.0 && skipped.get(1) == 1.0, "2^40 overflows fp16 at once");
        assertEquals(initial, scales.get(0), "the first overflow only spends hysteresis");
        assertEquals(initial / 2, scales.get(1), "the second halves the scale");
        assertTrue(skips >= 10 && skips < 35, skips + " skipped iterations");
        assertTrue(growths >= 1, "the scale grew again after clean windows: " + scales);
        assertEquals(45 - skips, r.optimizerSteps(), "skipped iterations take no optimizer step");
        assertEquals(4L * (45 - skips), r.schedulerSteps(), "nor a learning-rate step (the clock counts samples)");
        assertTrue(r.values(NAN).stream().allMatch(n -> n == 0.0), "finite losses are no nan iterations");
        List<Double> losses = r.result().iterationLosses();
        assertTrue(losses.stream().allMatch(Double::isFinite), losses.toString());
        assertTrue(losses.getLast() < losses.getFirst() - 0.5, "fp16 trains once the scale fits: " + losses);
        String skippedLine = r.log().getFirst();
        assertFalse(skippedLine.contains("grad norm:"), "a skipped iteration logs no grad norm: " + skippedLine);
        assertFalse(skippedLine.contains("lm loss:"), "nor a loss (Megatron averages over advanced iterations): " + skippedLine);
        assertTrue(skippedLine.contains("number of skipped iterations:   1 |"), skippedLine);
        assertTrue(r.log().getLast().contains("grad norm:"), r.log().getLast());
    }

    @Test
    void fp16WithAStaticLossScaleNeverChangesIt() {
        Run r = run(config(6, null, null, 0), Precision.FP16, () -> new LossScaler.Constant(128));
        assertTrue(r.scales().stream().allMatch(s -> s == 128.0), r.scales().toString());
        assertEquals(6, r.optimizerSteps());
    }

    /** Interrupted at 3 (bf16) or at 5, inside fp16's skipping phase, then resumed: the same losses and scales bit for bit. */
    @Test
    void resumedMixedPrecisionRunsRepeatTheUninterruptedOnesBitForBit() {
        for (Precision p : new Precision[] {Precision.BF16, Precision.FP16}) {
            Supplier<LossScaler> scaler = p == Precision.FP16 ? () -> new DynamicLossScaler(Math.pow(2, 22), 1, 3, 2) : () -> null;
            Run whole = run(config(10, null, null, 0), p, scaler);
            Path save = dir.resolve("ckpt-" + p.flagValue());
            Run first = run(config(10, save, null, 5), p, scaler);
            assertEquals(5, first.result().iteration());
            Run second = run(config(10, save, save, 0), p, scaler);
            List<Double> resumed = new ArrayList<>(first.result().iterationLosses());
            resumed.addAll(second.result().iterationLosses());
            List<Double> expected = whole.result().iterationLosses();
            assertEquals(expected.size(), resumed.size());
            for (int i = 0; i < resumed.size(); i++) {
                assertEquals(Double.doubleToRawLongBits(expected.get(i)), Double.doubleToRawLongBits(resumed.get(i)),
                        p + " iteration " + (i + 1) + ": " + expected + " vs " + resumed);
            }
            List<Double> scales = new ArrayList<>(first.scales());
            scales.addAll(second.scales());
            assertEquals(whole.scales(), scales, p + " loss scales");
            assertEquals(whole.optimizerSteps(), second.optimizerSteps(), p + " optimizer steps");
        }
    }

    /** Megatron loads an fp32 checkpoint into a bf16 run and back: the checkpoint holds the F32 main weights either way. */
    @Test
    void checkpointsMoveBetweenPrecisions() {
        Path fp32 = dir.resolve("fp32");
        run(config(6, fp32, null, 3), Precision.FP32, () -> null);
        Run bf16 = run(config(6, null, fp32, 0), Precision.BF16, () -> null);
        assertEquals(6, bf16.result().iteration());
        assertEquals(3, bf16.result().iterationLosses().size());
        assertTrue(bf16.result().iterationLosses().stream().allMatch(Double::isFinite));

        Path half = dir.resolve("bf16");
        run(config(6, half, null, 3), Precision.BF16, () -> null);
        Run back = run(config(6, null, half, 0), Precision.FP32, () -> null);
        assertEquals(3, back.result().iterationLosses().size());
        Run fp16 = run(config(6, null, half, 0), Precision.FP16, () -> new DynamicLossScaler(1024, 1, 1000, 2));
        assertEquals(1024.0, fp16.scales().getFirst(), "no saved scaler: the run's initial scale");
    }
}
