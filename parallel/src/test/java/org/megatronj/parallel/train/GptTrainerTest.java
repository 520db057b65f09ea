package org.megatronj.parallel.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.Backend;
import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.optim.DecayStyle;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The trainer over the real GPT model and AdamW: the loss falls, and a resumed run repeats it bit for bit (dropout on). */
class GptTrainerTest {
    private static final int VOCAB = 40;
    private static final int SEQ = 16;

    @TempDir
    Path dir;

    private static TransformerConfig model() {
        return TransformerConfig.builder().numLayers(2).hiddenSize(32).numAttentionHeads(4).seqLength(SEQ)
                .maxPositionEmbeddings(SEQ).vocabSize(VOCAB).makeVocabSizeDivisibleBy(8)
                .hiddenDropout(0.1f).attentionDropout(0f).build();
    }

    /** The scalar CPU kernels: the vector ones reduce in an order the JIT may change between runs (see the report). */
    private static TrainingConfig config(long iters, Path save, Path load, long exitInterval) {
        return new TrainingConfig(BatchConfig.of(2, 4), ScheduleConfig.iterations(iters, 3e-3, 3e-4, DecayStyle.COSINE, 2),
                OptimizerConfig.defaults(), new LoggingConfig(5, 0, 0, null, 0),
                new CheckpointConfig(save, 0, load, false, false, false), new ExitConfig(exitInterval, 0, true), 42);
    }

    private static TrainingResult run(TrainingConfig config) {
        TransformerConfig mc = model();
        // As pretrain gpt does: dropout continues the checkpoint's RNG stream; the init is overwritten by the load.
        long modelSeed = config.checkpoint().load() == null ? config.seed()
                : TrainingCheckpointer.savedRngStream(config.checkpoint().load()).orElse(config.seed());
        try (Backend backend = new CpuBackend(2, false); GPTModel gpt = new GPTModel(mc, backend, modelSeed);
             GptTraining.ModelOptimizer opt = GptTraining.optimizer(config.optimizer(), gpt)) {
            var ckpt = new TrainingCheckpointer(new ObjectMapper().valueToTree(mc), null);
            Trainer t = new Trainer(config, GptTraining.model(gpt), opt, new PatternSource(VOCAB, SEQ, 500, 1), null, null,
                    ckpt, null, line -> { });
            t.loadCheckpoint();
            return t.train();
        }
    }

    @Test
    void resumedRunRepeatsTheUninterruptedLossesBitForBit() {
        TrainingResult whole = run(config(8, null, null, 0));
        Path save = dir.resolve("ckpt");
        TrainingResult first = run(config(8, save, null, 3));
        assertEquals(3, first.iteration());
        TrainingResult second = run(config(8, save, save, 0));
        List<Double> resumed = new ArrayList<>(first.iterationLosses());
        resumed.addAll(second.iterationLosses());
        assertEquals(whole.iterationLosses().size(), resumed.size());
        for (int i = 0; i < resumed.size(); i++) {
            assertEquals(Double.doubleToRawLongBits(whole.iterationLosses().get(i)), Double.doubleToRawLongBits(resumed.get(i)),
                    "iteration " + (i + 1) + ": " + whole.iterationLosses() + " vs " + resumed);
        }
    }

    @Test
    void twoIdenticalRunsAgreeBitForBit() {
        assertEquals(run(config(8, null, null, 0)).iterationLosses(), run(config(8, null, null, 0)).iterationLosses());
    }

    @Test
    void lossFalls() {
        TrainingResult r = run(config(30, null, null, 0));
        double first = r.iterationLosses().getFirst();
        double last = r.iterationLosses().getLast();
        assertTrue(first > 3.3 && first < 4.1, "initial loss near ln(40) = 3.69, got " + first);
        assertTrue(last < 0.85 * first, "loss fell from " + first + " to " + last + ": " + r.iterationLosses());
    }
}
