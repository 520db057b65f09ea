package org.megatronj.parallel.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;

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

    private static TrainingConfig config(long iters, Path save, Path load, long exitInterval) {
        return new TrainingConfig(BatchConfig.of(2, 4), ScheduleConfig.iterations(iters, 3e-3, 3e-4, DecayStyle.COSINE, 2),
                OptimizerConfig.defaults(), new LoggingConfig(5, 0, 0, null, 0),
                new CheckpointConfig(save, 0, load, false, false, false), new ExitConfig(exitInterval, 0, true), 42);
    }

    private static TrainingResult run(TrainingConfig config, long initSeed) {
        System.setProperty("megatron.cpu.threads", "1");   // EXPERIMENT
        TransformerConfig mc = model();
        try (Backend backend = Backends.create("cpu"); GPTModel gpt = new GPTModel(mc, backend, initSeed);
             GptTraining.ModelOptimizer opt = GptTraining.optimizer(config.optimizer(), gpt.parameters(), backend)) {
            var ckpt = new TrainingCheckpointer(new ObjectMapper().valueToTree(mc), null);
            Trainer t = new Trainer(config, GptTraining.model(gpt), opt, new PatternSource(VOCAB, SEQ, 500, 1), null, null,
                    ckpt, null, line -> { });
            t.loadCheckpoint();
            return t.train();
        }
    }

    @Test
    void resumedRunRepeatsTheUninterruptedLossesBitForBit() {
        TrainingResult whole = run(config(8, null, null, 0), 7);
        Path save = dir.resolve("ckpt");
        TrainingResult first = run(config(8, save, null, 3), 7);
        assertEquals(3, first.iteration());
        TrainingResult second = run(config(8, save, save, 0), 1234);   // other init: the weights come from the checkpoint
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
        for (int k = 0; k < 3; k++) {
            assertEquals(run(config(8, null, null, 0), 7).iterationLosses(), run(config(8, null, null, 0), 7).iterationLosses());
        }
    }

    @Test
    void lossFalls() {
        TrainingResult r = run(config(30, null, null, 0), 3);
        double first = r.iterationLosses().getFirst();
        double last = r.iterationLosses().getLast();
        assertTrue(first > 3.3 && first < 4.1, "initial loss near ln(40) = 3.69, got " + first);
        assertTrue(last < 0.75 * first, "loss fell from " + first + " to " + last + ": " + r.iterationLosses());
    }
}
