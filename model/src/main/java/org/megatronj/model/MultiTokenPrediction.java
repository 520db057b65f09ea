package org.megatronj.model;

import static org.megatronj.model.layers.DropoutKey.probs;
import static org.megatronj.model.layers.DropoutKey.site;

import java.util.ArrayList;
import java.util.List;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.layers.DropoutKey;
import org.megatronj.model.layers.Embedding;
import org.megatronj.model.layers.HostTransfer;
import org.megatronj.model.layers.LanguageModelLoss;
import org.megatronj.model.layers.LayerActivations;
import org.megatronj.model.layers.SelectiveRecompute;
import org.megatronj.model.layers.Norm;
import org.megatronj.model.layers.TransformerLayer;
import org.megatronj.model.layers.VocabParallelIds;
import org.megatronj.model.layers.Workspace;
import org.megatronj.model.parallel.TensorParallelism;

/**
 * Megatron-core's {@code MultiTokenPredictionBlock} and {@code process_mtp_loss} on the last pipeline stage
 * ({@link MtpConfig}), with explicit forward and backward. For depth k = 1..N (index d = k - 1):
 * <pre>
 *   ids_k, labels_k, mask_k = roll_left(ids, labels, mask, k)      zeros rolled in at the last k positions
 *   e      = word_embeddings[ids_k]  (the shared table; dropout)                   [s, b, h]
 *   x      = eh_proj([enorm(e); hnorm(h_{k-1})])                                   [s, b, h]
 *   h_k    = final_layernorm(transformer_layer(x))                                 [s, b, h]
 *   loss_k = sum(mask_k * CE(h_k @ output_weight^T, labels_k)) / sum(mask_k)
 * </pre>
 * with {@code h_0} the decoder's output after its final norm. Training adds {@code (factor / N) * loss_k} to each
 * micro-batch's objective at the micro-batch's gradient scale ({@code MTPLossAutoScaler}); the reported loss stays
 * the decoder's. Under tensor parallelism eh_proj is column-parallel (this rank's h/t output rows), its output gathered
 * along the hidden dimension and, under sequence parallelism, this rank's sequence rows taken, as Megatron's
 * {@code _concat_embeddings}. The depths' transformer layers keep their activations under full recompute (the results
 * are the same); selective recompute's modules ({@link SelectiveRecompute}) share their buffers between the depths as
 * between the decoder's layers, and each depth's backward refills them. Parameter gradients accumulate; activation gradients are written.
 *
 * <p>The concatenation and the hidden-dimension gather are column copies of host memory ({@link ColumnCopy}): the
 * backends' op set has no strided device copy, so its forward refuses to train on a device backend by name
 * (generation and evaluation, which leave MTP out, run anywhere).
 */
final class MultiTokenPrediction implements AutoCloseable {
    /** One depth's modules: Megatron's {@code MultiTokenPredictionLayer}. */
    record Depth(Norm enorm, Norm hnorm, Parameter ehProj, TransformerLayer layer, Norm finalLayernorm) {
    }

    private final Backend backend;
    private final TransformerConfig shardConfig;
    private final MtpConfig mtp;
    private final int decoderLayers;
    private final Depth[] depths;
    private final Embedding embedding;          // the shared word embedding (the last stage's copy under PP)
    private final Parameter outputWeight;
    private final LanguageModelLoss lossFunction;
    private final TensorParallelism tp;
    private final int vocabSize;                // padded over all TP ranks
    private final List<Activations> slots = new ArrayList<>();
    private SelectiveRecompute layerRecompute = SelectiveRecompute.NONE;   // the decoder's selective recompute
    private final double[] lossSums;            // per depth: the micro-batches' mean losses since the last take
    private final double[] correct;             // per depth: counted positions whose argmax is the label, since the last take
    private final double[] counted;             // per depth: counted positions (mask != 0), since the last take

    MultiTokenPrediction(Backend backend, TransformerConfig config, TransformerConfig shardConfig, List<Depth> depths,
                         Embedding embedding, Parameter outputWeight, LanguageModelLoss lossFunction, TensorParallelism tp,
                         int vocabSize) {
        this.backend = backend;
        this.shardConfig = shardConfig;
        this.mtp = config.mtp();
        this.decoderLayers = config.numLayers();
        this.depths = depths.toArray(new Depth[0]);
        this.embedding = embedding;
        this.outputWeight = outputWeight;
        this.lossFunction = lossFunction;
        this.tp = tp;
        this.vocabSize = vocabSize;
        this.lossSums = new double[this.depths.length];
        this.correct = new double[this.depths.length];
        this.counted = new double[this.depths.length];
    }

    List<Depth> depths() {
        return List.of(depths);
    }

    /**
     * Forward of every depth for the micro-batch in {@code slot} from {@code decoderOut} (the decoder's final-norm
     * output, {@code [sl, b, h]}), up to each depth's loss; with {@code train} the per-depth mean losses are kept for
     * the log ({@link #takeLossSums}). Batch-major {@code tokens}, {@code labels}, {@code mask} are the micro-batch's.
     */
    void forward(int slot, MicroBatch batch, Tensor decoderOut, Workspace ws, DropoutKey key, Tensor documents,
                 boolean train) {
        if (!backend.device().isHost()) {   // generation and evaluation never get here: an MTP checkpoint serves anywhere
            throw new IllegalStateException("--mtp-num-layers trains on --device cpu only: eh_proj's concatenation needs a"
                    + " strided copy that the " + backend.name() + " backend does not offer");
        }
        int s = batch.seqLength();
        int b = batch.batchSize();
        Activations a = activationsFor(slot, s, b);
        boolean sp = tp.sequenceParallel();
        Tensor previous = decoderOut;
        for (int d = 0; d < depths.length; d++) {
            Depth depth = depths[d];
            DepthActivations da = a.depths[d];
            upload(batch, d + 1, da);
            DropoutKey embeddingKey = site(key, embeddingSite(d));
            // (no position table with MTP: the embedding ignores its positions argument)
            if (sp) {
                embedding.forwardSequenceParallel(da.tokens, da.maskedVocabRows, da.tokens, da.embedded, ws.hiddenA(),
                        ws.hiddenB(), embeddingKey);                                               // [s/t, b, h]
            } else {
                embedding.forward(da.tokens, da.maskedVocabRows, da.tokens, da.embedded, ws.hiddenA(), embeddingKey);
            }
            depth.enorm().forward(da.embedded, da.enormOut, da.enormMean, da.enormRstd);
            depth.hnorm().forward(previous, da.hnormOut, da.hnormMean, da.hnormRstd);
            long h = shardConfig.hiddenSize();
            ColumnCopy.copy(flat(da.enormOut), 0, flat(da.concat), 0, h);                          // [sl, b, 2h]
            ColumnCopy.copy(flat(da.hnormOut), 0, flat(da.concat), h, h);
            if (sp) {
                tp.group().allGatherFirstDim(da.concat, da.concatFull);                          // [s, b, 2h]
            }
            backend.gemm(false, true, 1f, flat(da.concatFull), depth.ehProj().compute(), 0f, flat(da.projLocal));
            gatherHidden(da);                                                                      // [s, b, h]
            int layer = decoderLayers + d;   // dropout sites and keys after the decoder's
            depth.layer().forward(da.layerIn, da.layerOut, da.layer, ws, probs(key, layer), site(key, 1 + 2 * layer),
                    site(key, 2 + 2 * layer), documents, null, 0);
            depth.finalLayernorm().forward(da.layerOut, da.finalOut, da.finalMean, da.finalRstd);
            if (sp) {
                tp.group().allGatherFirstDim(da.finalOut, da.finalFull);
            }
            backend.gemm(false, true, 1f, flat(da.finalFull), outputWeight.compute(), 0f, da.logits);   // [s*b, V/t]
            LossResult r = lossFunction.forward(da.logits, da.targets, da.lossMask, da.rowMax, da.sumExp, da.targetLogit,
                    da.loss);
            if (train && r.tokens() > 0) {   // Megatron logs sum / max(tokens, 1), zero without tokens
                lossSums[d] += r.lossSum() / r.tokens();
            }
            if (train) {
                countAccepted(d, da);
            }
            previous = da.finalOut;
        }
    }

    /**
     * Backward of every depth of the micro-batch in {@code slot}, the deepest first: each depth's loss at
     * {@code gradScale * factor / N}. Returns the gradient reaching the decoder's final-norm output {@code decoderOut}
     * ({@code [sl, b, h]}, a buffer of this slot); parameter gradients (the shared embedding and output weight included)
     * accumulate.
     */
    Tensor backward(int slot, float gradScale, Tensor decoderOut, Workspace ws, DropoutKey key, Tensor documents) {
        Activations a = slot(slot);
        Tensor dDecoderOut = a.dDecoderOut;
        boolean sp = tp.sequenceParallel();
        long h = shardConfig.hiddenSize();
        float scale = gradScale * mtp.depthLossScale();
        for (int d = depths.length - 1; d >= 0; d--) {
            Depth depth = depths[d];
            DepthActivations da = a.depths[d];
            lossFunction.backward(da.logits, da.targets, da.lossMask, scale, da.rowMax, da.sumExp, da.dLoss);
            Tensor dLogits = da.logits;                                                            // [s*b, V/t]
            backend.gemm(false, false, 1f, dLogits, outputWeight.compute(), 0f, flat(a.dFull));   // [s, b, h]
            if (sp) {
                tp.group().reduceScatterFirstDim(a.dFull, a.dShard);
            } else {
                tp.group().allReduceSum(a.dFull);
            }
            backend.gemm(true, false, 1f, dLogits, flat(da.finalFull), 1f, outputWeight.grad());
            if (d < depths.length - 1) {   // the deeper depth's hnorm read this depth's output too
                backend.add(a.dShard, a.dNext, a.dShard);
            }
            depth.finalLayernorm().backward(a.dShard, da.layerOut, da.finalMean, da.finalRstd, a.dLayer);
            int layer = decoderLayers + d;
            depth.layer().backward(a.dLayer, da.layerIn, da.layer, ws, probs(key, layer), site(key, 1 + 2 * layer),
                    site(key, 2 + 2 * layer), documents);                                          // d layerIn
            Tensor dProj = a.dLayer;                                                               // [s, b, h]
            if (sp) {   // the backward of taking this rank's rows: gather every rank's
                tp.group().allGatherFirstDim(a.dLayer, a.dFull);
                dProj = a.dFull;
            }
            Tensor dProjLocal = dProj;                                                             // [s, b, h/t]
            if (tp.size() > 1) {   // the backward of the hidden-dimension gather: this rank's columns
                ColumnCopy.copy(flat(dProj), tp.rank() * (h / tp.size()), flat(a.dProjLocal), 0, h / tp.size());
                dProjLocal = a.dProjLocal;
            }
            backend.gemm(true, false, 1f, flat(dProjLocal), flat(da.concatFull), 1f, depth.ehProj().grad());
            backend.gemm(false, false, 1f, flat(dProjLocal), depth.ehProj().compute(), 0f, flat(a.dConcatFull));
            if (sp) {
                tp.group().reduceScatterFirstDim(a.dConcatFull, a.dConcat);
            } else {
                tp.group().allReduceSum(a.dConcatFull);
            }
            ColumnCopy.copy(flat(a.dConcat), 0, flat(a.dPart), 0, h);
            depth.enorm().backward(a.dPart, da.embedded, da.enormMean, da.enormRstd, a.dEmbedded);
            DropoutKey embeddingKey = site(key, embeddingSite(d));
            if (sp) {
                embedding.backwardSequenceParallel(da.tokens, da.maskedVocabRows, da.tokens, a.dEmbedded, ws.shardA(),
                        ws.hiddenA(), embeddingKey);
            } else {
                embedding.backward(da.tokens, da.maskedVocabRows, da.tokens, a.dEmbedded, ws.hiddenA(), embeddingKey);
            }
            ColumnCopy.copy(flat(a.dConcat), h, flat(a.dPart), 0, h);
            Tensor previous = d == 0 ? decoderOut : a.depths[d - 1].finalOut;
            depth.hnorm().backward(a.dPart, previous, da.hnormMean, da.hnormRstd, d == 0 ? dDecoderOut : a.dNext);
        }
        return dDecoderOut;
    }

    /**
     * eh_proj's column-parallel output {@code projLocal [s, b, h/t]} gathered along the hidden dimension
     * ({@code gather_from_tensor_model_parallel_region}), then under sequence parallelism this rank's sequence rows
     * ({@code scatter_to_sequence_parallel_region}) as the layer's input.
     */
    private void gatherHidden(DepthActivations da) {
        int t = tp.size();
        if (t == 1) {
            return;   // projLocal is projFull and layerIn
        }
        long n = da.projLocal.numel() / da.projLocal.dim(-1);
        long part = da.projLocal.dim(-1);
        tp.group().allGatherFirstDim(flat(da.projLocal), da.gathered);                             // [t * s*b, h/t]
        for (int r = 0; r < t; r++) {
            ColumnCopy.copy(da.gathered.view(r * n, (r + 1) * n), 0, flat(da.projFull), r * part, part);
        }
        if (tp.sequenceParallel()) {
            long rows = da.layerIn.dim(0);
            backend.copy(da.projFull.view(tp.rank() * rows, (tp.rank() + 1) * rows), da.layerIn);
        }
    }

    /**
     * Megatron's acceptance counts ({@code _compute_mtp_acceptance_counts}): the counted positions whose prediction, the
     * first index of the largest logit over the whole (padded) vocabulary, is the rolled label. Under TP each rank
     * offers its first index reaching the global row maximum (from the loss's forward) and the smallest wins, which is
     * Megatron's {@code _vocab_parallel_argmax}.
     */
    private void countAccepted(int d, DepthActivations da) {
        backend.argmax(da.logits, da.argmax);                                                    // I32 [s*b], local
        backend.crossEntropyTargetLogit(da.logits, da.argmax, 0, da.argmaxLogit);                // its logit
        float[] best = da.argmaxLogit.toFloatArray();
        float[] rowMax = da.rowMax.toFloatArray();
        long vocabStart = (long) tp.rank() * (vocabSize / tp.size());
        for (int i = 0; i < best.length; i++) {   // -index, so that the all-reduced maximum is the smallest index
            long index = vocabStart + da.argmax.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, i);
            da.prediction.setFloat(i, best[i] == rowMax[i] ? -index : -Float.MAX_VALUE);
        }
        tp.group().allReduceMax(da.prediction);
        for (int i = 0; i < best.length; i++) {
            if (da.lossMask[i] != 0f) {
                counted[d]++;
                correct[d] += -da.prediction.getFloat(i) == da.labels[i] ? 1 : 0;
            }
        }
    }

    /** Depth k's ids, labels and loss mask: the micro-batch's rolled left by k, zeros rolled in (Megatron's roll_tensor). */
    private void upload(MicroBatch batch, int k, DepthActivations da) {
        int b = batch.batchSize();
        int s = batch.seqLength();
        int[] tokens = HostTransfer.toSequenceFirst(rollLeft(batch.tokens(), b, s, k), b, s);
        if (tp.size() > 1) {
            int rows = vocabSize / tp.size();
            VocabParallelIds ids = VocabParallelIds.of(tokens, tp.rank() * rows, (tp.rank() + 1) * rows);
            tokens = ids.localIds();
            da.maskedVocabRows = ids.maskedRuns();
        }
        HostTransfer.uploadInts(backend, tokens, da.tokens);
        da.labels = HostTransfer.toSequenceFirst(rollLeft(batch.labels(), b, s, k), b, s);
        HostTransfer.uploadInts(backend, da.labels, da.targets);
        da.lossMask = HostTransfer.toSequenceFirst(rollLeft(batch.lossMask(), b, s, k), b, s);
    }

    /** Each batch-major row {@code [b, s]} shifted left by k positions, the last k set to 0. */
    static int[] rollLeft(int[] rows, int b, int s, int k) {
        int[] out = new int[rows.length];
        for (int r = 0; r < b; r++) {
            if (k < s) {
                System.arraycopy(rows, r * s + k, out, r * s, s - k);
            }
        }
        return out;
    }

    static float[] rollLeft(float[] rows, int b, int s, int k) {
        float[] out = new float[rows.length];
        for (int r = 0; r < b; r++) {
            if (k < s) {
                System.arraycopy(rows, r * s + k, out, r * s, s - k);
            }
        }
        return out;
    }

    /**
     * Each depth's mean losses summed over the training micro-batches since the last call (Megatron's
     * {@code MTPLossLoggingHelper} tracker), then reset.
     */
    double[] takeLossSums() {
        double[] out = lossSums.clone();
        java.util.Arrays.fill(lossSums, 0);
        return out;
    }

    /** Each depth's acceptance counts since the last call, {@code [correct..., counted...]}, then reset. */
    double[] takeAcceptanceCounts() {
        double[] out = new double[2 * depths.length];
        System.arraycopy(correct, 0, out, 0, depths.length);
        System.arraycopy(counted, 0, out, depths.length, depths.length);
        java.util.Arrays.fill(correct, 0);
        java.util.Arrays.fill(counted, 0);
        return out;
    }

    /** The dropout site of depth d's embedding: after the decoder's and the depths' layers' sites. */
    private int embeddingSite(int d) {
        return 1 + 2 * (decoderLayers + depths.length) + d;
    }

    private static Tensor flat(Tensor x) {
        return x.reshape(-1, x.dim(-1));
    }

    private Activations slot(int slot) {
        if (slot < 0 || slot >= slots.size() || slots.get(slot) == null) {
            throw new IllegalStateException("MTP activation slot " + slot + " has no micro-batch: run its forward first");
        }
        return slots.get(slot);
    }

    /** Selective recompute of the depths' layers (as the decoder's); applies from the next micro-batch. */
    void setLayerRecompute(SelectiveRecompute recompute) {
        this.layerRecompute = java.util.Objects.requireNonNull(recompute, "recompute");
    }

    private Activations activationsFor(int slot, int s, int b) {
        while (slots.size() <= slot) {
            slots.add(null);
        }
        Activations a = slots.get(slot);
        if (a == null || a.seqLength != s || a.batchSize != b || !a.recompute.equals(layerRecompute)) {
            if (a != null) {
                a.close();
            }
            a = new Activations(s, b);
            slots.set(slot, a);
        }
        return a;
    }

    /** Bytes of the depths' activation buffers. */
    long activationBytes() {
        long bytes = 0;
        for (Activations a : slots) {
            bytes += a == null ? 0 : a.arena.bytesAllocated();
        }
        return bytes;
    }

    @Override
    public void close() {
        for (Activations a : slots) {
            if (a != null) {
                a.close();
            }
        }
        slots.clear();
    }

    /** What one depth keeps from its forward for its backward; x is the compute dtype, sl the sequence rows held here. */
    private final class DepthActivations {
        final Tensor tokens;        // I32 [s, b]: rolled ids (this rank's vocabulary rows' local ids under TP)
        final Tensor targets;       // I32 [s * b]: rolled labels
        int[] maskedVocabRows = VocabParallelIds.NONE_MASKED;
        float[] lossMask;           // rolled, sequence-first
        int[] labels;               // rolled, sequence-first (host copy of targets)
        final Tensor embedded;      // x [sl, b, h]
        final Tensor enormOut, enormMean, enormRstd;
        final Tensor hnormOut, hnormMean, hnormRstd;
        final Tensor concat;        // x [sl, b, 2h]: [enorm(e); hnorm(h)]
        final Tensor concatFull;    // x [s, b, 2h]: all-gathered under SP, else concat
        final Tensor projLocal;     // x [s, b, h/t]: eh_proj's rows of this rank
        final Tensor gathered;      // x [t * s * b, h/t] (TP only)
        final Tensor projFull;      // x [s, b, h]: gathered along h, else projLocal
        final Tensor layerIn;       // x [sl, b, h]: this rank's rows of projFull under SP, else projFull
        final Tensor layerOut;      // x [sl, b, h]
        final LayerActivations layer;
        final Tensor finalOut, finalMean, finalRstd;   // x [sl, b, h], F32 [sl, b]
        final Tensor finalFull;     // x [s, b, h]: all-gathered under SP, else finalOut
        final Tensor logits;        // x [s * b, V/t], then their gradient
        final Tensor rowMax, sumExp, targetLogit, loss, dLoss;   // F32 [s * b]
        final Tensor argmax;        // I32 [s * b]: this rank's first largest logit (acceptance counts)
        final Tensor argmaxLogit;   // F32 [s * b]: its value
        final Tensor prediction;    // F32 [s * b]: minus the predicted global index, all-reduced

        /** {@code first}: the first depth's activations, whose buffers selective recompute shares (null for it). */
        DepthActivations(TensorArena arena, int s, int b, int sl, DType x, SelectiveRecompute recompute,
                         DepthActivations first) {
            int h = shardConfig.hiddenSize();
            int t = tp.size();
            long n = (long) s * b;
            boolean ln = shardConfig.normalization() == Normalization.LAYER_NORM;
            tokens = backend.allocate(arena, DType.I32, s, b);
            targets = backend.allocate(arena, DType.I32, n);
            embedded = backend.allocate(arena, x, sl, b, h);
            enormOut = backend.allocate(arena, x, sl, b, h);
            enormMean = ln ? backend.allocate(arena, DType.F32, sl, b) : null;
            enormRstd = backend.allocate(arena, DType.F32, sl, b);
            hnormOut = backend.allocate(arena, x, sl, b, h);
            hnormMean = ln ? backend.allocate(arena, DType.F32, sl, b) : null;
            hnormRstd = backend.allocate(arena, DType.F32, sl, b);
            concat = backend.allocate(arena, x, sl, b, 2 * h);
            concatFull = sl == s ? concat : backend.allocate(arena, x, s, b, 2 * h);
            projLocal = backend.allocate(arena, x, s, b, h / t);
            gathered = t == 1 ? null : backend.allocate(arena, x, t * n, h / t);
            projFull = t == 1 ? projLocal : backend.allocate(arena, x, s, b, h);
            layerIn = sl == s ? projFull : backend.allocate(arena, x, sl, b, h);
            layerOut = backend.allocate(arena, x, sl, b, h);
            layer = LayerActivations.allocate(backend, arena, shardConfig, s, b, sl, x, recompute,
                    first == null ? null : first.layer);
            finalOut = backend.allocate(arena, x, sl, b, h);
            finalMean = ln ? backend.allocate(arena, DType.F32, sl, b) : null;
            finalRstd = backend.allocate(arena, DType.F32, sl, b);
            finalFull = sl == s ? finalOut : backend.allocate(arena, x, s, b, h);
            logits = backend.allocate(arena, x, n, vocabSize / t);
            rowMax = backend.allocate(arena, DType.F32, n);
            sumExp = backend.allocate(arena, DType.F32, n);
            targetLogit = backend.allocate(arena, DType.F32, n);
            loss = backend.allocate(arena, DType.F32, n);
            dLoss = backend.allocate(arena, DType.F32, n);
            argmax = backend.allocate(arena, DType.I32, n);
            argmaxLogit = backend.allocate(arena, DType.F32, n);
            prediction = backend.allocate(arena, DType.F32, n);
        }
    }

    /** Every depth's activations of one micro-batch shape, and the backward's scratch (shared by the depths). */
    private final class Activations implements AutoCloseable {
        final int seqLength;
        final int batchSize;
        final TensorArena arena;
        final DepthActivations[] depths;
        final SelectiveRecompute recompute;   // what the depths' layers share (planned with it)
        final Tensor dFull;         // x [s, b, h]
        final Tensor dShard;        // x [sl, b, h]: the reduce-scattered dFull under SP, else dFull
        final Tensor dNext;         // x [sl, b, h]: the gradient of a depth's output from the deeper depth's hnorm
        final Tensor dLayer;        // x [sl, b, h]: the layer's output, then input, gradient
        final Tensor dProjLocal;    // x [s, b, h/t] (TP only)
        final Tensor dConcatFull;   // x [s, b, 2h]
        final Tensor dConcat;       // x [sl, b, 2h]: reduce-scattered under SP, else dConcatFull
        final Tensor dPart;         // x [sl, b, h]: one half of dConcat
        final Tensor dEmbedded;     // x [sl, b, h]
        final Tensor dDecoderOut;   // x [sl, b, h]: the depths' gradient of the decoder's final-norm output

        Activations(int s, int b) {
            this.seqLength = s;
            this.batchSize = b;
            this.recompute = layerRecompute;
            this.arena = TensorArena.named("mtp-activations[s=" + s + ",b=" + b + "]");
            DType x = outputWeight.compute().dtype();
            int t = tp.size();
            int sl = tp.sequenceParallel() ? s / t : s;
            int h = shardConfig.hiddenSize();
            depths = new DepthActivations[MultiTokenPrediction.this.depths.length];
            for (int d = 0; d < depths.length; d++) {
                depths[d] = new DepthActivations(arena, s, b, sl, x, recompute, d == 0 ? null : depths[0]);
            }
            dFull = backend.allocate(arena, x, s, b, h);
            dShard = sl == s ? dFull : backend.allocate(arena, x, sl, b, h);
            dNext = backend.allocate(arena, x, sl, b, h);
            dLayer = backend.allocate(arena, x, sl, b, h);
            dProjLocal = t == 1 ? null : backend.allocate(arena, x, s, b, h / t);
            dConcatFull = backend.allocate(arena, x, s, b, 2 * h);
            dConcat = sl == s ? dConcatFull : backend.allocate(arena, x, sl, b, 2 * h);
            dPart = backend.allocate(arena, x, sl, b, h);
            dEmbedded = backend.allocate(arena, x, sl, b, h);
            dDecoderOut = backend.allocate(arena, x, sl, b, h);
        }

        @Override
        public void close() {
            arena.close();
        }
    }
}
