package org.megatronj.cli;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.npy.NpyArray;
import org.megatronj.io.npy.NpyFile;
import org.megatronj.io.safetensors.SafetensorsFile;

import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Label -100, HF's (PyTorch CrossEntropyLoss's) ignore index, in {@code debug forward-backward}. */
class DebugForwardBackwardCommandTest {
    private static final int VOCAB = 61;

    @TempDir
    Path dir;
    Path hf;

    @BeforeEach
    void writeModel() throws Exception {
        hf = dir.resolve("hf");
        HfGpt2Fixture.write(hf);
    }

    private CliRun run(String tag, long[] ids, long[] labels, int seq) throws Exception {
        NpyFile.write(dir.resolve(tag + "-ids.npy"), NpyArray.ofInt64(ids).reshape(ids.length / seq, seq));
        NpyFile.write(dir.resolve(tag + "-labels.npy"), NpyArray.ofInt64(labels).reshape(labels.length / seq, seq));
        return CliRun.of("debug", "forward-backward", "--hf-dir", hf.toString(),
                "--input-ids", dir.resolve(tag + "-ids.npy").toString(), "--labels", dir.resolve(tag + "-labels.npy").toString(),
                "--logits-out", dir.resolve(tag + "-logits.npy").toString(), "--grads-out", dir.resolve(tag + "-grads.safetensors").toString());
    }

    private static double loss(CliRun run) {
        Matcher m = Pattern.compile("lm loss: (\\S+)").matcher(run.out());
        assertTrue(m.find(), run.out());
        return Double.parseDouble(m.group(1));
    }

    private float[] grad(String tag, String name) {
        try (SafetensorsFile g = SafetensorsFile.open(dir.resolve(tag + "-grads.safetensors"))) {
            return g.tensor(name).toFloatArray();
        }
    }

    @Test
    void ignoredLabelsLeaveTheMeanButKeepTheirLogits() throws Exception {
        long[] ids = {1, 5, 9, 60, 0, 33, 2, 7, 7, 7, 12, 40};
        long[] labels = {5, 9, -100, 0, 33, -100, 7, 7, 7, 12, 40, 3};
        CliRun masked = run("masked", ids, labels, 6);
        assertEquals(0, masked.code(), masked.toString());
        long[] all = {5, 9, 60, 0, 33, 2, 7, 7, 7, 12, 40, 3};
        CliRun full = run("full", ids, all, 6);
        assertEquals(0, full.code(), full.toString());

        NpyArray logits = NpyFile.readCopy(dir.resolve("masked-logits.npy"));
        NpyArray fullLogits = NpyFile.readCopy(dir.resolve("full-logits.npy"));
        assertArrayEquals(new long[] {2, 6, VOCAB}, logits.shape());
        double sum = 0;
        int counted = 0;
        for (int t = 0; t < 12; t++) {
            for (int v = 0; v < VOCAB; v++) {     // every position's logits are written, ignored ones included
                assertEquals(Float.floatToRawIntBits((float) fullLogits.getDouble(t * (long) VOCAB + v)),
                        Float.floatToRawIntBits((float) logits.getDouble(t * (long) VOCAB + v)));
            }
            if (labels[t] == -100) {
                continue;
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < VOCAB; v++) {
                max = Math.max(max, logits.getDouble(t * (long) VOCAB + v));
            }
            double z = 0;
            for (int v = 0; v < VOCAB; v++) {
                z += Math.exp(logits.getDouble(t * (long) VOCAB + v) - max);
            }
            sum += Math.log(z) + max - logits.getDouble(t * (long) VOCAB + labels[t]);
            counted++;
        }
        assertEquals(10, counted);
        assertEquals(sum / counted, loss(masked), 1e-5, "the mean over the labels that are not -100");
        assertTrue(Math.abs(loss(masked) - loss(full)) > 1e-3, "the ignored positions are left out");
    }

    @Test
    void ignoredPositionsContributeNoGradient() throws Exception {
        // With causal attention the last position feeds nothing but its own loss: ignoring it must give
        // the gradients of the sequence without it, and no gradient at all to its position embedding.
        long[] ids = {1, 5, 9, 60, 0, 33, 2, 7, 7, 7, 12, 40};
        long[] labels = {5, 9, 60, 0, 33, -100, 7, 7, 7, 12, 40, -100};
        CliRun masked = run("masked", ids, labels, 6);
        assertEquals(0, masked.code(), masked.toString());
        CliRun cut = run("cut", new long[] {1, 5, 9, 60, 0, 2, 7, 7, 7, 12}, new long[] {5, 9, 60, 0, 33, 7, 7, 7, 12, 40}, 5);
        assertEquals(0, cut.code(), cut.toString());
        assertEquals(loss(cut), loss(masked), 1e-6);

        float[] wpe = grad("masked", "transformer.wpe.weight");        // [16, 8]
        for (int i = 5 * 8; i < 6 * 8; i++) {
            assertEquals(0f, wpe[i], "wpe row 5 (the ignored position), element " + i % 8);
        }
        for (String name : new String[] {"transformer.wpe.weight", "transformer.wte.weight", "transformer.h.0.attn.c_attn.weight",
                "transformer.h.1.mlp.c_fc.weight", "transformer.ln_f.bias"}) {
            float[] a = grad("masked", name);
            float[] b = grad("cut", name);
            for (int i = 0; i < a.length; i++) {
                assertEquals(b[i], a[i], 1e-6, name + "[" + i + "]");
            }
        }
    }

    @Test
    void allLabelsIgnoredGiveNanLossAndZeroGradientsAsPyTorch() throws Exception {
        long[] ids = {1, 5, 9};
        CliRun run = run("none", ids, new long[] {-100, -100, -100}, 3);
        assertEquals(0, run.code(), run.toString());
        assertTrue(run.out().contains("lm loss: NaN"), run.out());
        assertTrue(run.err().contains("every label is -100"), run.err());
        try (SafetensorsFile g = SafetensorsFile.open(dir.resolve("none-grads.safetensors"))) {
            for (String name : g.names()) {
                float[] values = g.tensor(name).toFloatArray();
                assertArrayEquals(new float[values.length], values, name);
            }
        }
    }

    @Test
    void otherNegativeLabelsAreStillRefused() throws Exception {
        CliRun run = run("bad", new long[] {1, 5, 9}, new long[] {5, -1, 3}, 3);
        assertEquals(1, run.code(), run.toString());
        assertTrue(run.err().contains("element 1 (row 0, column 1) is -1, outside the vocabulary [0, 61) and not -100 (ignored)"),
                run.err());
        run = run("badIds", new long[] {1, -100, 9}, new long[] {5, 9, 3}, 3);
        assertEquals(1, run.code(), run.toString());
        assertTrue(run.err().contains("is -100, outside the vocabulary [0, 61)"), run.err());
    }
}
