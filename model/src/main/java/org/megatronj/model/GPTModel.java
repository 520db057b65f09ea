package org.megatronj.model;

import static org.megatronj.model.layers.DropoutKey.probs;
import static org.megatronj.model.layers.DropoutKey.site;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.layers.DropoutKey;
import org.megatronj.model.layers.Embedding;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.model.layers.LanguageModelLoss;
import org.megatronj.model.layers.Linear;
import org.megatronj.model.layers.FeedForward;
import org.megatronj.model.layers.Mlp;
import org.megatronj.model.layers.MoeLayer;
import org.megatronj.model.layers.Norm;
import org.megatronj.model.layers.RotaryEmbedding;
import org.megatronj.model.layers.SelfAttention;
import org.megatronj.model.layers.Attention;
import org.megatronj.model.layers.MultiLatentAttention;
import org.megatronj.model.layers.TransformerLayer;
import org.megatronj.model.layers.Workspace;
import org.megatronj.model.layers.ColumnParallelLinear;
import org.megatronj.model.layers.ContextParallelExchange;
import org.megatronj.model.parallel.ContextParallelism;
import org.megatronj.model.layers.RowParallelLinear;
import org.megatronj.model.layers.VocabParallelIds;
import org.megatronj.model.parallel.TensorParallelGroup;
import org.megatronj.model.parallel.TensorParallelism;

import java.util.ArrayList;
import java.util.List;

/**
 * A GPT decoder as Megatron-core's {@code GPTModel}, with explicit forward and backward:
 * <pre>
 *   x      = dropout(word_embeddings[tokens] + position_embeddings[positions])   [s, b, h]
 *   x      = decoder.layers[l](x)  for l in 0..L-1                              [s, b, h]
 *   logits = final_layernorm(x) @ output_weight^T                               [s*b, V]
 *   loss   = sum(mask * CE(logits, labels)) / sum(mask)
 * </pre>
 * Activations are sequence-first; micro-batches arrive batch-major and are transposed on upload.
 * The output weight is the word embedding unless the config unties them. Parameter gradients
 * accumulate across calls until {@link #zeroGrad()}.
 *
 * <p>With tensor parallelism ({@link TensorParallelism}) this object is one TP rank's shard, as
 * Megatron-core: {@code linear_qkv}/{@code linear_fc1} column-parallel, {@code linear_proj}/
 * {@code linear_fc2} row-parallel, np/t heads and ng/t query groups per rank, vocab-parallel
 * embedding, output layer and cross-entropy. Every TP rank of a group must be fed the same
 * micro-batches and returns the same loss.
 *
 * <p>With context parallelism ({@link ContextParallelism}) this object computes two chunks of every sequence
 * (the micro-batches it is fed hold just those positions, with their global position ids); the attention layers
 * exchange keys and values over the CP group ({@link ContextParallelExchange}), everything else is per token.
 *
 * <p>With mixed precision ({@link Precision#BF16}, {@link Precision#FP16}) the layers compute with
 * a 16-bit copy of the F32 main weights ({@link Parameter#compute()}, refreshed by
 * {@link #refreshComputeWeights()}) and keep 16-bit activations and logits; norm statistics, the
 * attention log-sum-exp and the cross-entropy are F32, and gradients accumulate into the F32
 * main gradients.
 */
public final class GPTModel implements AutoCloseable {
    private final TransformerConfig config;
    private final TransformerConfig shardConfig;    // what this TP rank computes (np/t heads, ffn/t)
    private final TensorParallelism tp;
    private final ContextParallelism cp;
    private final ContextParallelExchange contextExchange;   // null without context parallelism
    private final int vocabSize;                    // the padded vocabulary over all TP ranks
    private final Backend backend;
    private PhaseTimers phaseTimers = PhaseTimers.NONE;
    private final long seed;
    private final Precision precision;
    private final ParameterStore params;
    private final List<ParameterSpec> specs;
    private final ModelChunk chunk;
    private final TensorArena buffers = TensorArena.named("model-constants");
    private final RotaryEmbedding rope;            // null with learned positions and with none
    private final Embedding embedding;             // first chunk only
    private final TransformerLayer[] layers;
    private final Norm finalLayernorm;              // last chunk only, as the two below
    private final Parameter outputWeight;           // [V, h]: word embeddings (tied) or output_layer.weight
    private final LanguageModelLoss lossFunction;
    private final MultiTokenPrediction mtp;         // last chunk with --mtp-num-layers only
    private final List<ActivationStore> slots = new ArrayList<>();   // one per micro-batch in flight, for one shape
    private final long[] layerOffsets;              // flat-store offset of each layer's first parameter
    private GradReadyListener gradReady;
    private float moeAuxLossScale = Float.NaN;   // NaN: each micro-batch's gradient scale

    /**
     * Told during backward how far the parameter gradients are complete: after a call with
     * {@code flatOffset}, backward adds nothing more to the flat gradient store at offsets
     * {@code >= flatOffset} in this micro-batch (backward runs against the store's order). The
     * data-parallel reducer starts a bucket's reduction from this on the last micro-batch
     * ({@code --overlap-grad-reduce}).
     */
    @FunctionalInterface
    public interface GradReadyListener {
        void gradsReadyFrom(GPTModel model, long flatOffset);
    }
    private ActivationRecompute recompute = ActivationRecompute.none();

    /** Builds the model and initialises it as Megatron does, from {@code seed}. */
    public GPTModel(TransformerConfig config, Backend backend, long seed) {
        this(config, backend, seed, TensorParallelism.none());
    }

    /**
     * One tensor-parallel rank's shard of the model; its weights are that rank's slices of the
     * single-rank model built from the same seed.
     */
    public GPTModel(TransformerConfig config, Backend backend, long seed, TensorParallelism tp) {
        this(config, backend, seed, tp, 1);
    }

    /**
     * As {@link #GPTModel(TransformerConfig, Backend, long, TensorParallelism)}, with the flat
     * parameter store padded so that the distributed optimizer splits it into
     * {@code dataParallelSize} equal shards.
     */
    public GPTModel(TransformerConfig config, Backend backend, long seed, TensorParallelism tp, int dataParallelSize) {
        this(config, backend, seed, tp, dataParallelSize, ModelChunk.whole(config));
    }

    /**
     * One model chunk (pipeline stage, {@link ModelChunk}) of one tensor-parallel rank. Its
     * weights equal the single-rank model's of the same names and seed.
     */
    public GPTModel(TransformerConfig config, Backend backend, long seed, TensorParallelism tp, int dataParallelSize,
                    ModelChunk chunk) {
        this(config, backend, seed, tp, dataParallelSize, chunk, Precision.FP32);
    }

    /** The whole model on one rank, computing in {@code precision} (F32 main weights and gradients in every case). */
    public GPTModel(TransformerConfig config, Backend backend, long seed, Precision precision) {
        this(config, backend, seed, TensorParallelism.none(), 1, ModelChunk.whole(config), precision);
    }

    /**
     * One model chunk of one tensor-parallel rank computing in {@code precision}: with BF16/F16
     * the layers read a 16-bit copy of the weights ({@link #refreshComputeWeights}) and keep their
     * activations in that dtype; the main weights and gradients stay F32.
     */
    public GPTModel(TransformerConfig config, Backend backend, long seed, TensorParallelism tp, int dataParallelSize,
                    ModelChunk chunk, Precision precision) {
        this(config, backend, seed, tp, dataParallelSize, chunk, precision, ContextParallelism.none());
    }

    /**
     * One model chunk of one tensor- and context-parallel rank: {@code cp} splits every sequence over its group
     * (the weights are the same on every CP rank). {@code dataParallelSize}: the ranks the distributed optimizer
     * shards the flat store over (DP x CP under context parallelism).
     */
    public GPTModel(TransformerConfig config, Backend backend, long seed, TensorParallelism tp, int dataParallelSize,
                    ModelChunk chunk, Precision precision, ContextParallelism cp) {
        this.config = config.validate();
        this.cp = java.util.Objects.requireNonNull(cp, "context parallelism");
        this.precision = java.util.Objects.requireNonNull(precision, "precision");
        this.chunk = chunk;
        if (chunk.firstLayer() + chunk.numLayers() > config.numLayers()) {
            throw new IllegalArgumentException("model chunk " + chunk + " exceeds --num-layers " + config.numLayers());
        }
        this.tp = tp;
        int t = tp.size();
        if (config.moe() != null) {
            checkMixtureOfExperts(config, tp, cp);
        }
        if (config.mla() != null && cp.active()) {
            throw new IllegalArgumentException("--context-parallel-size > 1 is not supported with --multi-latent-attention"
                    + " in Megatron-J (MLA's keys and values are not exchanged between context ranks)");
        }
        this.shardConfig = config.tensorParallelShard(t);
        this.vocabSize = config.paddedVocabSize(t);
        this.backend = backend;
        this.seed = seed;
        this.contextExchange = cp.active() ? new ContextParallelExchange(backend, cp) : null;
        List<ParameterSpec> specs = ParameterSpec.forGpt(config, t, chunk);
        this.specs = List.copyOf(specs);
        this.params = new ParameterStore(backend, specs, dataParallelSize, precision.computeDtype());
        params.initialize(backend, specs, config, seed, t, tp.rank());
        TensorParallelGroup group = tp.group();

        boolean learned = config.positionEmbeddingType() == PositionEmbeddingType.LEARNED_ABSOLUTE;
        this.rope = config.mla() != null ? RotaryEmbedding.forMla(backend, buffers, config)   // MLA's own, in every case
                : config.positionEmbeddingType() != PositionEmbeddingType.ROPE ? null
                : new RotaryEmbedding(backend, buffers, config);
        this.embedding = !chunk.preProcess() ? null : new Embedding(backend, param("embedding.word_embeddings.weight"),
                learned ? param("embedding.position_embeddings.weight") : null, config.hiddenDropout(), group);
        this.layers = new TransformerLayer[chunk.numLayers()];
        for (int l = 0; l < layers.length; l++) {
            String p = "decoder.layers." + (chunk.firstLayer() + l) + ".";
            layers[l] = transformerLayer(p, chunk.firstLayer() + l, config.isMoeLayer(chunk.firstLayer() + l), group);
        }
        boolean post = chunk.postProcess();
        this.finalLayernorm = post ? norm("decoder.final_layernorm") : null;
        this.outputWeight = !post ? null : config.untieEmbeddingsAndOutputWeights()
                ? param("output_layer.weight") : param("embedding.word_embeddings.weight");
        this.lossFunction = post ? new LanguageModelLoss(backend, group, (long) tp.rank() * (vocabSize / t)) : null;
        this.mtp = post && config.mtp() != null ? multiTokenPrediction(group) : null;
        this.layerOffsets = new long[layers.length];
        for (int l = 0; l < layers.length; l++) {
            layerOffsets[l] = params.offset("decoder.layers." + (chunk.firstLayer() + l) + ".input_layernorm.weight");
        }
    }

    /** Sets (or clears, with null) the listener told as parameter gradients become complete in backward. */
    public void setGradReadyListener(GradReadyListener listener) {
        this.gradReady = listener;
    }

    private void gradsReadyFrom(long offset) {
        if (gradReady != null) {
            gradReady.gradsReadyFrom(this, offset);
        }
    }

    // ------------------------------------------------------------------ training and evaluation

    /**
     * Forward and backward of one micro-batch: the gradients of {@code gradScale * loss} accumulate
     * into every {@link Parameter#grad()}. Dropout masks are a function of (model seed, rngOffset),
     * so the trainer reproduces them by passing the same offset (e.g. the global micro-batch index).
     * Returns the unscaled masked loss sum and token count. Needs the whole model on this stage
     * (pipeline stages use {@link #forwardStep} and {@link #backwardStep}).
     */
    public LossResult forwardBackward(MicroBatch batch, float gradScale, long rngOffset) {
        requireWholeModel("forwardBackward");
        startPhase("forward-compute");
        ActivationStore a = forwardActivations(0, batch, rngOffset, true);
        LossResult result = lossFunction.forwardBackward(a.logits, a.targets, a.lossMask, gradScale, a.rowMax, a.sumExp,
                a.targetLogit, a.loss, a.dLoss);   // the loss gradient is known here: one pass over the logits
        stopPhase("forward-compute");               // (so the loss's backward counts as forward here)
        startPhase("backward-compute");
        setAuxLossScale(gradScale);
        backward(a, a.key, 0, gradScale);
        stopPhase("backward-compute");
        return result;
    }

    /** Where this chunk reports its forward and backward times ({@link PhaseTimers#NONE} by default). */
    public void setPhaseTimers(PhaseTimers timers) {
        this.phaseTimers = timers;
    }

    public PhaseTimers phaseTimers() {
        return phaseTimers;
    }

    /**
     * Starts a phase timer after the device's queue drained, as Megatron's timers synchronise CUDA:
     * a device backend returns from a launch long before the work is done.
     */
    private void startPhase(String phase) {
        if (phaseTimers.enabled()) {
            backend.synchronize();
            phaseTimers.start(phase);
        }
    }

    private void stopPhase(String phase) {
        if (phaseTimers.enabled()) {
            backend.synchronize();
            phaseTimers.stop(phase);
        }
    }

    /** The masked loss of one micro-batch without dropout or gradients (evaluation). */
    public LossResult forwardLoss(MicroBatch batch) {
        requireWholeModel("forwardLoss");
        return forwardStep(0, batch, 0, false);
    }

    // ------------------------------------------------------------------ pipeline stage steps

    /**
     * The buffer of activation slot {@code slot} ({@code [s, b, h]}, or {@code [s/t, b, h]} under
     * sequence parallelism) that a stage without the embedding receives its input into before
     * {@link #forwardStep}. A slot holds one micro-batch from its forward to its backward; a
     * pipeline schedule uses as many as it has micro-batches in flight.
     */
    public Tensor stageInput(int slot, int seqLength, int batchSize) {
        return activationsFor(slot, seqLength, batchSize).hidden[0];
    }

    /** The output of slot {@code slot}'s last forward (to send to the next stage). */
    public Tensor stageOutput(int slot) {
        ActivationStore a = slot(slot);
        return a.hidden[layers.length];
    }

    /**
     * Where a stage without the loss receives the gradient of its output before
     * {@link #backwardStep}; after it, the same buffer holds the gradient of the stage input
     * (to send to the previous stage).
     */
    public Tensor stageGrad(int slot) {
        return slot(slot).dResidual;
    }

    /**
     * Forward of one micro-batch through this chunk in activation slot {@code slot}: from the
     * embedding on the first chunk, else from {@link #stageInput}. Returns the masked loss on the
     * last chunk, null elsewhere. {@code train} enables dropout (masks from the seed and rngOffset).
     */
    public LossResult forwardStep(int slot, MicroBatch batch, long rngOffset, boolean train) {
        if (train) {
            startPhase("forward-compute");
        }
        ActivationStore a = forwardActivations(slot, batch, rngOffset, train);
        LossResult loss = chunk.postProcess()
                ? lossFunction.forward(a.logits, a.targets, a.lossMask, a.rowMax, a.sumExp, a.targetLogit, a.loss) : null;
        if (train) {
            stopPhase("forward-compute");
        }
        return loss;
    }

    /** Uploads the micro-batch into slot {@code slot} and runs this chunk's forward up to the logits. */
    private ActivationStore forwardActivations(int slot, MicroBatch batch, long rngOffset, boolean train) {
        ActivationStore a = activationsFor(slot, batch.seqLength(), batch.batchSize());
        a.lossMask = upload(batch, a);
        a.key = !train ? null : cp.active() ? DropoutKey.forMicroBatch(seed, rngOffset).forContextParallelRank(cp.rank())
                : DropoutKey.forMicroBatch(seed, rngOffset);
        forward(a, a.key);
        a.withMtp = train && mtp != null;   // MTP only trains: evaluation and generation leave it out, as Megatron
        if (a.withMtp) {
            mtp.forward(slot, batch, a.finalNormOut, a.workspace, a.key, a.documents, true);
        }
        return a;
    }

    /**
     * Backward of the micro-batch in slot {@code slot}: from the loss (scaled by {@code gradScale})
     * on the last chunk, else from the output gradient in {@link #stageGrad}. Parameter gradients
     * accumulate; on chunks without the embedding {@link #stageGrad} then holds the input gradient.
     */
    public void backwardStep(int slot, float gradScale) {
        ActivationStore a = slot(slot);
        startPhase("backward-compute");
        if (chunk.postProcess()) {
            lossFunction.backward(a.logits, a.targets, a.lossMask, gradScale, a.rowMax, a.sumExp, a.dLoss);
        }
        setAuxLossScale(gradScale);
        backward(a, a.key, slot, gradScale);
        stopPhase("backward-compute");
    }

    private void setAuxLossScale(float gradScale) {
        float scale = Float.isNaN(moeAuxLossScale) ? gradScale : moeAuxLossScale;
        for (MoeLayer moe : moeLayers()) {
            moe.setAuxLossScale(scale);
        }
    }

    private ActivationStore slot(int slot) {
        if (slot < 0 || slot >= slots.size() || slots.get(slot) == null) {
            throw new IllegalStateException("activation slot " + slot + " has no micro-batch: call forwardStep first");
        }
        return slots.get(slot);
    }

    /**
     * Logits over the padded vocabulary, batch-major {@code [b, s, V]} flattened, without dropout.
     * tokens and positionIds (may be null) are batch-major {@code [b, s]}.
     */
    public float[] forwardLogits(int[] tokens, int[] positionIds, int batch, int seq) {
        requireSingleRank("forwardLogits");
        int[] labels = new int[tokens.length];
        MicroBatch mb = new MicroBatch(batch, seq, tokens, labels, new float[tokens.length], positionIds);
        ActivationStore a = activationsFor(0, seq, batch);
        upload(mb, a);
        forward(a, null);
        float[] seqFirst = HostTransfer.downloadFloats(backend, a.logits);   // [s, b, V]
        int v = config.paddedVocabSize();
        float[] out = new float[seqFirst.length];
        for (int t = 0; t < seq; t++) {
            for (int r = 0; r < batch; r++) {
                System.arraycopy(seqFirst, (t * batch + r) * v, out, (r * seq + t) * v, v);
            }
        }
        return out;
    }

    private void forward(ActivationStore a, DropoutKey key) {
        Workspace ws = a.workspace;
        boolean sp = tp.sequenceParallel();
        if (chunk.preProcess()) {
            if (sp) {
                embedding.forwardSequenceParallel(a.tokens, a.maskedVocabRows, a.positions, a.hidden[0], ws.hiddenA(),
                        ws.hiddenB(), site(key, 0));                                              // [s/t, b, h]
            } else {
                embedding.forward(a.tokens, a.maskedVocabRows, a.positions, a.hidden[0], ws.hiddenA(), site(key, 0));
            }
        }
        for (int l = 0; l < layers.length; l++) {
            forwardLayer(a, l, key);                                                              // [s, b, h]
        }
        if (!chunk.postProcess()) {
            return;
        }
        Tensor x = a.hidden[layers.length];
        finalLayernorm.forward(x, a.finalNormOut, a.finalNormMean, a.finalNormRstd);              // [s, b, h]
        if (sp) {
            tp.group().allGatherFirstDim(a.finalNormOut, a.finalNormFull);                       // [s, b, h]
        }
        backend.gemm(false, true, 1f, flat(a.finalNormFull), outputWeight.compute(), 0f, a.logits); // [s*b, V/t]
    }

    private void forwardLayer(ActivationStore a, int l, DropoutKey key) {
        int global = chunk.firstLayer() + l;   // dropout sites follow the global layer index
        layers[l].forward(a.hidden[l], a.hidden[l + 1], a.layer(l), a.workspace, probs(key, global),
                site(key, 1 + 2 * global), site(key, 2 + 2 * global), a.documents, null, 0);
    }

    private void backward(ActivationStore a, DropoutKey key, int slot, float gradScale) {
        Workspace ws = a.workspace;
        if (chunk.postProcess()) {
            // The MTP depths first (they read the decoder's final-norm output): their gradient of it joins the logits'.
            Tensor dFromMtp = a.withMtp ? mtp.backward(slot, gradScale, a.finalNormOut, ws, key, a.documents) : null;
            Tensor dLogits = a.logits;                                                           // [s*b, V/t]
            Tensor dNormFull = ws.hiddenB();                                                     // [s, b, h]
            backend.gemm(false, false, 1f, dLogits, outputWeight.compute(), 0f, flat(dNormFull));
            // Each rank's vocabulary columns give part of the gradient: sum it (reduce-scatter under SP).
            Tensor dNormOut = dNormFull;
            if (tp.sequenceParallel()) {
                dNormOut = ws.shardB();
                tp.group().reduceScatterFirstDim(dNormFull, dNormOut);
            } else {
                tp.group().allReduceSum(dNormOut);
            }
            backend.gemm(true, false, 1f, dLogits, flat(a.finalNormFull), 1f, outputWeight.grad());  // dW[V/t, h] +=
            if (dFromMtp != null) {
                backend.add(dNormOut, dFromMtp, dNormOut);
            }
            finalLayernorm.backward(dNormOut, a.hidden[layers.length], a.finalNormMean, a.finalNormRstd, a.dResidual);
            gradsReadyFrom(params.offset("decoder.final_layernorm.weight"));
        }
        for (int l = layers.length - 1; l >= 0; l--) {
            int global = chunk.firstLayer() + l;
            int groupStart = a.recompute.groupStartEndingAt(l, layers.length);
            // Full recompute: rerun the group's layers from its saved input with the same dropout keys (same
            // masks); their outputs land in hidden[], which hold the same values again.
            for (int r = groupStart; r >= 0 && r <= l; r++) {
                forwardLayer(a, r, key);
            }
            layers[l].backward(a.dResidual, a.hidden[l], a.layer(l), ws, probs(key, global), site(key, 1 + 2 * global),
                    site(key, 2 + 2 * global), a.documents);
            gradsReadyFrom(layerOffsets[l]);
        }
        if (!chunk.preProcess()) {
            gradsReadyFrom(0);
            return;
        }
        if (tp.sequenceParallel()) {
            embedding.backwardSequenceParallel(a.tokens, a.maskedVocabRows, a.positions, a.dResidual, ws.shardA(),
                    ws.hiddenA(), site(key, 0));
        } else {
            embedding.backward(a.tokens, a.maskedVocabRows, a.positions, a.dResidual, ws.hiddenA(), site(key, 0));
        }
        gradsReadyFrom(0);
    }

    /**
     * Uploads tokens, positions and labels sequence-first, and the key starts of documents batch-major
     * (attention's layout); returns the loss mask sequence-first.
     */
    private float[] upload(MicroBatch batch, ActivationStore a) {
        int b = batch.batchSize();
        int s = batch.seqLength();
        int vocab = vocabSize;
        checkIds("token", batch.tokens(), vocab, s);
        checkIds("label", batch.labels(), vocab, s);
        int[] positions = batch.positionIds();
        if (positions == null) {
            positions = new int[b * s];
            for (int i = 0; i < positions.length; i++) {
                positions[i] = i % s;
            }
        } else if (config.positionEmbeddingType() == PositionEmbeddingType.LEARNED_ABSOLUTE) {
            checkIds("position", positions, config.maxPositionEmbeddings(), s);
        }
        int[] tokens = HostTransfer.toSequenceFirst(batch.tokens(), b, s);
        if (tp.size() > 1) {
            int rows = vocabSize / tp.size();
            VocabParallelIds ids = VocabParallelIds.of(tokens, tp.rank() * rows, (tp.rank() + 1) * rows);
            tokens = ids.localIds();
            a.maskedVocabRows = ids.maskedRuns();
        }
        HostTransfer.uploadInts(backend, tokens, a.tokens);
        HostTransfer.uploadInts(backend, HostTransfer.toSequenceFirst(positions, b, s), a.positions);
        HostTransfer.uploadInts(backend, HostTransfer.toSequenceFirst(batch.labels(), b, s), a.targets);
        if (batch.keyStarts() != null) {
            HostTransfer.uploadInts(backend, batch.keyStarts(), a.keyStarts);
        }
        a.documents = batch.keyStarts() == null ? null : a.keyStarts;
        return HostTransfer.toSequenceFirst(batch.lossMask(), b, s);
    }

    private static void checkIds(String what, int[] ids, int limit, int s) {
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= limit) {
                throw new IllegalArgumentException(what + " id " + ids[i] + " at sample " + i / s + ", position " + i % s
                        + " is outside [0, " + limit + ")");
            }
        }
    }

    private ActivationStore activationsFor(int slot, int s, int b) {
        if (s > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("sequence length " + s + " exceeds --max-position-embeddings "
                    + config.maxPositionEmbeddings());
        }
        if (tp.sequenceParallel() && s % tp.size() != 0) {
            throw new IllegalArgumentException("--sequence-parallel: sequence length " + s
                    + " is not divisible by --tensor-model-parallel-size " + tp.size());
        }
        while (slots.size() <= slot) {
            slots.add(null);
        }
        ActivationStore a = slots.get(slot);
        if (a == null || !a.fits(s, b, recompute)) {
            if (a != null) {
                a.close();
            }
            a = new ActivationStore(backend, shardConfig, s, b, recompute, vocabSize / tp.size(),
                    tp.sequenceParallel() ? s / tp.size() : s, layers.length, chunk.postProcess(), precision.computeDtype());
            slots.set(slot, a);
        }
        return a;
    }

    private static Tensor flat(Tensor x) {
        return x.reshape(-1, x.dim(-1));
    }

    // ------------------------------------------------------------------ parameters

    public TransformerConfig config() {
        return config;
    }

    /** The layers and ends of the model this object holds ({@link ModelChunk#whole} on one stage). */
    public ModelChunk chunk() {
        return chunk;
    }

    /** How this model's sequences are split across context-parallel ranks ({@link ContextParallelism#none()} on one). */
    public ContextParallelism contextParallelism() {
        return cp;
    }

    /** How this model is split across tensor-parallel ranks ({@link TensorParallelism#none()} on one rank). */
    public TensorParallelism tensorParallelism() {
        return tp;
    }

    /** The specs of this rank's parameters (shard shapes and how each is split), in parameter order. */
    public List<ParameterSpec> parameterSpecs() {
        return specs;
    }

    public Backend backend() {
        return backend;
    }

    /** The seed of the initialisation and of the dropout masks (with each micro-batch's rngOffset). */
    public long seed() {
        return seed;
    }

    /** All parameters in their fixed order (checkpoint and optimizer order). */
    public List<Parameter> parameters() {
        return params.parameters();
    }

    public Parameter parameter(String name) {
        return params.parameter(name);
    }

    /** The flat store behind all parameters and gradients (for bucketing and fused optimizer steps). */
    public ParameterStore parameterStore() {
        return params;
    }

    /** The dtype the layers compute in ({@link Precision#FP32} unless mixed precision). */
    public Precision precision() {
        return precision;
    }

    /**
     * Casts the F32 main weights into the compute copy the layers read (one op over the flat
     * store; nothing in fp32). The optimizer adapters call it after every step (with AdamW the step
     * writes the copy itself), the trainer after a checkpoint load; anything else that writes
     * {@link Parameter#data()} must call it too.
     */
    public void refreshComputeWeights() {
        params.refreshComputeWeights(backend);
    }

    /** Zeroes every gradient in one op. */
    public void zeroGrad() {
        backend.fill(params.flatGrad(), 0f);
    }

    /** Parameters counted once (the tied output weight is the word embedding), without buffers ({@link ParameterSpec#buffer}). */
    public long parameterCount() {
        long n = 0;
        for (Parameter p : params.parameters()) {
            n += ParameterSpec.isBuffer(p.name()) ? 0 : p.numel();
        }
        return n;
    }

    /**
     * {@code --moe-router-enable-expert-bias} on one rank: each MoE layer's bias moves by the tokens its experts received
     * since the last update (Megatron's {@code _update_router_expert_bias} in {@code finalize_model_grads}).
     */
    public void updateMoeExpertBias() {
        for (MoeLayer moe : moeLayers()) {
            if (moe.hasExpertBias()) {
                moe.updateExpertBias(moe.takeTokensPerExpert());
            }
        }
    }

    /**
     * Full activation recompute, as Megatron's {@code --recompute-granularity full --recompute-method uniform
     * --recompute-num-layers 1} (true) or none (false). See {@link #setRecompute} for the other settings.
     */
    public void setRecomputeActivations(boolean recompute) {
        setRecompute(recompute ? ActivationRecompute.full(ActivationRecompute.Method.UNIFORM, 1) : ActivationRecompute.none());
    }

    /** Megatron's recompute settings ({@link ActivationRecompute}); applies from the next micro-batch. */
    public void setRecompute(ActivationRecompute recompute) {
        this.recompute = java.util.Objects.requireNonNull(recompute, "recompute");
        if (mtp != null) {   // the depths' layers recompute the decoder layers' modules
            mtp.setLayerRecompute(recompute.layerRecompute());
        }
    }

    /** True with full recompute (any method). */
    public boolean recomputeActivations() {
        return recompute.granularity() == ActivationRecompute.Granularity.FULL;
    }

    public ActivationRecompute recompute() {
        return recompute;
    }

    /** Bytes of the activation buffers planned for the last micro-batch shape (0 before the first). */
    public long activationBytes() {
        long bytes = 0;
        for (ActivationStore a : slots) {
            bytes += a == null ? 0 : a.bytes();
        }
        return bytes + (mtp == null ? 0 : mtp.activationBytes());
    }

    // ------------------------------------------------------------------ pieces for incremental decoding

    public Embedding embedding() {
        return embedding;
    }

    public List<TransformerLayer> layers() {
        return List.of(layers);
    }

    public Norm finalLayernorm() {
        return finalLayernorm;
    }

    /** {@code [V, h]}: the word embedding when tied. */
    public Parameter outputWeight() {
        return outputWeight;
    }

    private Parameter param(String name) {
        return params.parameter(name);
    }

    private Linear linear(String prefix) {
        return new Linear(backend, param(prefix + ".weight"), config.hasBias(prefix) ? param(prefix + ".bias") : null);
    }

    private Linear columnLinear(String prefix) {
        if (tp.size() == 1) {
            return linear(prefix);
        }
        return new ColumnParallelLinear(backend, param(prefix + ".weight"),
                config.hasBias(prefix) ? param(prefix + ".bias") : null, tp.group(), tp.sequenceParallel());
    }

    /**
     * The transformer layer whose parameters are under {@code p} ("decoder.layers.L." or an MTP depth's
     * "mtp.layers.K.transformer_layer."): MLA or Megatron's self-attention, a MoE layer or the dense MLP.
     * {@code layerNumber} is its place among the decoder's layers and the MTP depths (it names a MoE layer's router state).
     */
    private TransformerLayer transformerLayer(String p, int layerNumber, boolean moe, TensorParallelGroup group) {
        String a = p + "self_attention.";
        Attention attention = config.mla() != null ? multiLatentAttention(a)
                : new SelfAttention(backend, shardConfig, columnLinear(a + "linear_qkv"), rowLinear(a + "linear_proj"), rope,
                config.qkLayernorm() ? norm(a + "q_layernorm") : null, config.qkLayernorm() ? norm(a + "k_layernorm") : null,
                tp.rank() * shardConfig.numAttentionHeads(), contextExchange);
        FeedForward mlp = moe ? moeLayer(layerNumber, p + "mlp.")
                : new Mlp(backend, columnLinear(p + "mlp.linear_fc1"), rowLinear(p + "mlp.linear_fc2"), config.swiglu(),
                Mlp.activation(config));
        return new TransformerLayer(backend, norm(p + "input_layernorm"), attention, norm(p + "pre_mlp_layernorm"), mlp,
                config.hiddenDropout(), group, tp.sequenceParallel());
    }

    /** A layer's MLASelfAttention from its parameters under {@code p} ({@code decoder.layers.L.self_attention.}). */
    private MultiLatentAttention multiLatentAttention(String p) {
        boolean latent = config.mla().hasQueryLatent();
        boolean norms = config.qkLayernorm();
        return new MultiLatentAttention(backend, shardConfig, latent ? linear(p + "linear_q_down_proj") : null,
                latent && norms ? norm(p + "q_layernorm") : null,
                upProjection(latent ? p + "linear_q_up_proj" : p + "linear_q_proj"), param(p + "linear_kv_down_proj.weight"),
                norms ? norm(p + "kv_layernorm") : null, upProjection(p + "linear_kv_up_proj"), rowLinear(p + "linear_proj"),
                rope, tp.group(), tp.sequenceParallel(), tp.rank() * shardConfig.numAttentionHeads());
    }

    /** MLA's column-parallel up projections (its own sequence-parallel gathers: built without the flag). */
    private ColumnParallelLinear upProjection(String prefix) {
        return new ColumnParallelLinear(backend, param(prefix + ".weight"), null, tp.group(), false);
    }

    private Linear rowLinear(String prefix) {
        if (tp.size() == 1) {
            return linear(prefix);
        }
        return new RowParallelLinear(backend, param(prefix + ".weight"),
                config.hasBias(prefix) ? param(prefix + ".bias") : null, tp.group(), tp.sequenceParallel());
    }

    private void requireWholeModel(String what) {
        if (!chunk.whole()) {
            throw new IllegalStateException(what + " needs the whole model on this stage; this chunk is " + chunk
                    + " (pipeline stages run forwardStep/backwardStep under a pipeline schedule)");
        }
    }

    private void requireSingleRank(String what) {
        requireWholeModel(what);
        if (cp.active()) {
            throw new IllegalStateException(what + " needs whole sequences on one rank; this is context-parallel rank "
                    + cp.rank() + " of " + cp.size() + " (merge the checkpoint to one rank for generation)");
        }
        if (tp.size() > 1) {
            throw new IllegalStateException(what + " needs the whole model on one rank; this is tensor-parallel "
                    + tp.group().describe() + " (merge the checkpoint to one rank for generation)");
        }
    }

    /** Megatron's MoELayer of the layer whose MLP parameters start with {@code prefix}. */
    private MoeLayer moeLayer(int layer, String prefix) {
        MoeConfig moe = shardConfig.moe();
        Parameter[] fc1 = new Parameter[moe.numExperts()];
        Parameter[] fc2 = new Parameter[moe.numExperts()];
        for (int e = 0; e < fc1.length; e++) {
            fc1[e] = param(prefix + "experts.local_experts." + e + ".linear_fc1.weight");
            fc2[e] = param(prefix + "experts.local_experts." + e + ".linear_fc2.weight");
        }
        Mlp shared = moe.sharedExpertIntermediateSize() == 0 ? null : new Mlp(backend,
                columnLinear(prefix + "shared_experts.linear_fc1"), rowLinear(prefix + "shared_experts.linear_fc2"),
                config.swiglu(), Mlp.activation(config));
        Parameter gate = moe.sharedExpertGate() ? param(prefix + "shared_experts.gate_weight") : null;
        Parameter bias = moe.routerEnableExpertBias() ? param(prefix + "router.expert_bias") : null;
        return new MoeLayer(backend, layer, moe, param(prefix + "router.weight"), fc1, fc2, shared, gate, bias, config.swiglu(),
                Mlp.activation(config), tp.group(), tp.sequenceParallel(), precision.computeDtype());
    }

    /** What Megatron-J's mixture of experts needs from the parallel layout, refused with the reason. */
    private static void checkMixtureOfExperts(TransformerConfig config, TensorParallelism tp, ContextParallelism cp) {
        if (tp.size() > 1 && !tp.sequenceParallel()) {   // Megatron's MoELayer raises this in training
            throw new IllegalArgumentException("--num-experts with --tensor-model-parallel-size " + tp.size()
                    + " needs --sequence-parallel (Megatron: 'During training, performance may degrade if MoE and tensor"
                    + " parallelism are enabled without also enabling sequence parallelism.')");
        }
        if (cp.active()) {
            throw new IllegalArgumentException("--num-experts with --context-parallel-size " + cp.size()
                    + " is not supported by Megatron-J yet");
        }
    }

    /** The MoE layers of this chunk, in layer order (empty for a dense model). */
    public List<MoeLayer> moeLayers() {
        List<MoeLayer> out = new ArrayList<>();
        for (TransformerLayer layer : layers) {
            if (layer.mlp() instanceof MoeLayer moe) {
                out.add(moe);
            }
        }
        if (mtp != null) {   // the MTP depths' layers after the decoder's (layer numbers L + d)
            for (MultiTokenPrediction.Depth depth : mtp.depths()) {
                if (depth.layer().mlp() instanceof MoeLayer moe) {
                    out.add(moe);
                }
            }
        }
        return out;
    }

    /**
     * The gradient scale of the MoE layers' auxiliary losses (Megatron's {@code MoEAuxLossAutoScaler.set_loss_scale}:
     * the loss scale over the number of micro-batches). Until set, each backward uses its micro-batch's gradient scale.
     */
    public void setMoeAuxLossScale(float scale) {
        this.moeAuxLossScale = scale;
    }

    /**
     * The MTP depths of the last chunk ({@link MultiTokenPrediction}): each depth's layer is built as the decoder's last
     * layer (dense or MoE, Megatron's {@code get_gpt_mtp_block_spec}); the embedding reads the shared word embedding.
     */
    private MultiTokenPrediction multiTokenPrediction(TensorParallelGroup group) {
        if (cp.active()) {
            throw new IllegalArgumentException("--mtp-num-layers with --context-parallel-size " + cp.size()
                    + " is not supported by Megatron-J (nor by Megatron-LM's documented MTP)");
        }
        List<MultiTokenPrediction.Depth> depths = new ArrayList<>();
        for (int d = 0; d < config.mtpNumLayers(); d++) {
            String p = ParameterSpec.mtpPrefix(d);
            String l = p + "transformer_layer.";
            int layerNumber = config.numLayers() + d;
            TransformerLayer layer = transformerLayer(l, layerNumber, config.mtpLayersAreMoe(), group);
            depths.add(new MultiTokenPrediction.Depth(norm(p + "enorm"), norm(p + "hnorm"), param(p + "eh_proj.weight"),
                    layer, norm(p + "final_layernorm")));
        }
        Embedding shared = new Embedding(backend, param("embedding.word_embeddings.weight"), null, config.hiddenDropout(),
                group);
        return new MultiTokenPrediction(backend, config, shardConfig, depths, shared, outputWeight, lossFunction, tp,
                vocabSize);
    }

    /**
     * Each MTP depth's mean losses of this chunk's training micro-batches since the last call, summed (Megatron's
     * {@code MTPLossLoggingHelper} tracker), then reset; empty without MTP on this chunk.
     */
    public double[] takeMtpLossSums() {
        return mtp == null ? new double[0] : mtp.takeLossSums();
    }

    /**
     * Each MTP depth's acceptance counts of this chunk's training micro-batches since the last call (Megatron's
     * {@code _compute_mtp_acceptance_counts}: counted positions whose argmax is the label), {@code [correct..., counted...]},
     * then reset; empty without MTP on this chunk.
     */
    public double[] takeMtpAcceptanceCounts() {
        return mtp == null ? new double[0] : mtp.takeAcceptanceCounts();
    }

    private Norm norm(String prefix) {
        Parameter weight = param(prefix + ".weight");
        return new Norm(backend, config.normalization(), weight,
                config.normalization() == Normalization.LAYER_NORM ? param(prefix + ".bias") : null,
                config.layernormEpsilon(),
                config.applyLayernorm1p() ? backend.allocate(buffers, weight.compute().dtype(), weight.compute().shape()) : null);
    }

    @Override
    public void close() {
        for (ActivationStore a : slots) {
            if (a != null) {
                a.close();
            }
        }
        slots.clear();
        if (mtp != null) {
            mtp.close();
        }
        if (contextExchange != null) {
            contextExchange.close();
        }
        buffers.close();
        params.close();
    }
}
