package org.megatronj.cli;

import org.megatronj.io.npy.NpyArray;
import org.megatronj.io.npy.NpyDtype;
import org.megatronj.io.npy.NpyFile;
import org.megatronj.io.safetensors.SafetensorsWriter;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.GPTModel;
import org.megatronj.model.LossResult;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.Parameter;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.Gpt2HfConfig;
import org.megatronj.parallel.checkpoint.Gpt2HfWeights;
import org.megatronj.parallel.checkpoint.HfSafetensors;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * {@code megatron debug forward-backward}: one fp32 forward and backward of a Hugging Face GPT-2
 * model, for comparison with PyTorch/transformers on the same weights and tokens.
 */
@Command(name = "forward-backward", mixinStandardHelpOptions = true,
        description = {"One fp32 forward and backward of a Hugging Face GPT-2 model (no dropout) on given token ids",
                "and already-shifted labels; label -100 (HF's ignore index) is left out of the loss, as PyTorch's",
                "CrossEntropyLoss does. Prints 'lm loss: <mean over the other labels>' with 10 significant digits",
                "(NaN, as in PyTorch, when every label is -100);",
                "optionally writes the logits [batch, seq, vocab] (float32 .npy, unpadded vocab) and the gradient of every",
                "parameter under its HF name and layout (the tied wte gradient holds the embedding and output-layer parts)."})
final class DebugForwardBackwardCommand implements Callable<Integer> {
    /** The label PyTorch's CrossEntropyLoss (and so HF's GPT-2 loss) skips by default. */
    static final int IGNORE_INDEX = -100;

    @Option(names = "--hf-dir", required = true, paramLabel = "DIR", description = "Folder with config.json and model.safetensors (or its shards and index).")
    Path hfDir;

    @Option(names = "--input-ids", required = true, paramLabel = "IDS.npy", description = "int64 (or int32) token ids [batch, seq].")
    Path inputIds;

    @Option(names = "--labels", required = true, paramLabel = "LABELS.npy",
            description = "int64 (or int32) next-token ids [batch, seq]; -100 ignores a position.")
    Path labels;

    @Option(names = "--logits-out", paramLabel = "L.npy", description = "Write float32 logits [batch, seq, vocab].")
    Path logitsOut;

    @Option(names = "--grads-out", paramLabel = "G.safetensors", description = "Write every parameter's gradient (F32, HF names).")
    Path gradsOut;

    @Mixin
    DeviceOptions deviceOptions;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        // No vocabulary padding: HF's softmax runs over exactly vocab_size logits.
        TransformerConfig hf = Gpt2HfConfig.read(hfDir, 1);
        TransformerConfig config = withoutDropout(hf);
        int[] ids;
        int[] targets;
        long[] shape;
        try (Arena arena = Arena.ofConfined()) {
            NpyArray idArray = NpyFile.read(inputIds, arena);
            NpyArray labelArray = NpyFile.read(labels, arena);
            shape = checkTokens(idArray, inputIds, null, config.vocabSize(), false);
            checkTokens(labelArray, labels, shape, config.vocabSize(), true);
            ids = toInts(idArray);
            targets = toInts(labelArray);
        }
        // Megatron's loss mask does what ignore_index does: the masked positions are left out of the mean
        // and get no gradient. Their target only has to be a valid row index.
        float[] lossMask = new float[targets.length];
        for (int i = 0; i < targets.length; i++) {
            lossMask[i] = targets[i] == IGNORE_INDEX ? 0f : 1f;
            targets[i] = Math.max(targets[i], 0);
        }
        int batch = (int) shape[0];
        int seq = (int) shape[1];
        if (seq > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException(inputIds + ": sequence length " + seq + " exceeds n_positions " + config.maxPositionEmbeddings());
        }
        try (Backend backend = Backends.create(deviceOptions.device());
             GPTModel model = new GPTModel(config, backend, 0);
             TensorArena arena = TensorArena.named("debug");
             HfSafetensors file = HfSafetensors.open(hfDir)) {
            Map<String, Tensor> weights = Gpt2HfWeights.toMegatron(file, config, arena);
            for (Parameter p : model.parameters()) {
                Tensor w = weights.get(p.name());
                if (w == null) {
                    throw new IllegalStateException("no HF weight maps to model parameter " + p.name());
                }
                backend.copy(w, p.data());
            }
            model.zeroGrad();
            LossResult loss = model.forwardBackward(new MicroBatch(batch, seq, ids, targets, lossMask, null), 1f, 0);
            if (loss.tokens() == 0) {
                spec.commandLine().getErr().println("note: every label is " + IGNORE_INDEX
                        + ": the loss is NaN (0/0, as PyTorch gives) and every gradient is zero");
            }
            spec.commandLine().getOut().println("lm loss: " + String.format(Locale.ROOT, "%.10g", loss.meanLoss()));
            if (logitsOut != null) {
                float[] logits = model.forwardLogits(ids, null, batch, seq);
                NpyFile.write(logitsOut, floatArray(logits, batch, seq, config.paddedVocabSize(), config.vocabSize()));
            }
            if (gradsOut != null) {
                Map<String, Tensor> grads = new LinkedHashMap<>();
                for (Parameter p : model.parameters()) {
                    Tensor g = arena.allocate(p.grad().dtype(), p.grad().shape());
                    backend.copy(p.grad(), g);
                    grads.put(p.name(), g);
                }
                SafetensorsWriter.write(gradsOut, Gpt2HfWeights.toHf(grads, config, arena), Map.of("format", "pt"));
            }
            spec.commandLine().getOut().flush();
        }
        return 0;
    }

    private static long[] checkTokens(NpyArray a, Path file, long[] expectShape, int vocab, boolean labels) {
        if (a.dtype() != NpyDtype.INT64 && a.dtype() != NpyDtype.INT32) {
            throw new IllegalArgumentException(file + ": dtype " + a.dtype().descr() + ", expected int64 token ids");
        }
        if (a.rank() != 2 || a.dim(0) < 1 || a.dim(1) < 1) {
            throw new IllegalArgumentException(file + ": shape " + Tensor.shapeString(a.shape()) + ", expected [batch, seq]");
        }
        if (expectShape != null && !Arrays.equals(expectShape, a.shape())) {
            throw new IllegalArgumentException(file + ": shape " + Tensor.shapeString(a.shape()) + " differs from --input-ids "
                    + Tensor.shapeString(expectShape));
        }
        for (long i = 0; i < a.elementCount(); i++) {
            long v = a.getLong(i);
            if ((v < 0 || v >= vocab) && !(labels && v == IGNORE_INDEX)) {
                throw new IllegalArgumentException(file + ": element " + i + " (row " + i / a.dim(1) + ", column " + i % a.dim(1)
                        + ") is " + v + ", outside the vocabulary [0, " + vocab + ")"
                        + (labels ? " and not " + IGNORE_INDEX + " (ignored)" : ""));
            }
        }
        return a.shape();
    }

    private static int[] toInts(NpyArray a) {
        int[] out = new int[Math.toIntExact(a.elementCount())];
        for (int i = 0; i < out.length; i++) {
            out[i] = (int) a.getLong(i);
        }
        return out;
    }

    /** [b*s*Vpad] -> float32 [b, s, V] (the padded columns dropped). */
    private static NpyArray floatArray(float[] logits, int batch, int seq, int padded, int vocab) {
        MemorySegment seg = MemorySegment.ofArray(new byte[Math.multiplyExact(batch * seq, vocab * 4)]);
        ValueLayout.OfFloat le = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        for (long row = 0; row < (long) batch * seq; row++) {
            for (int v = 0; v < vocab; v++) {
                seg.setAtIndex(le, row * vocab + v, logits[(int) (row * padded + v)]);
            }
        }
        return new NpyArray(NpyDtype.FLOAT32, new long[] {batch, seq, vocab}, seg);
    }

    static TransformerConfig withoutDropout(TransformerConfig c) {
        return c.toBuilder().attentionDropout(0f).hiddenDropout(0f).build();
    }
}
