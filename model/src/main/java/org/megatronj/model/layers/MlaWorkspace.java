package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.TransformerConfig;

/**
 * Scratch of {@link MultiLatentAttention} for one {@code [s, b]} shape, and the row indices that cut and join its
 * tensors. Every tensor MLA splits along channels is viewed as rows of {@code g} channels (g divides qk_head_dim,
 * qk_pos_emb_head_dim and v_head_dim: {@link MlaConfig#channelGranule}), so that the splits and concatenations are
 * row gathers ({@link Backend#embeddingForward}) and the sum over heads a row scatter-add
 * ({@link Backend#embeddingBackward}). Indices run token-major, so the first {@code s'} positions' indices are a prefix
 * of them (generation uses {@link #firstPositions}); the tables they point into keep their offsets for the whole shape.
 *
 * @param kvStack     rows of g: linear_kv_up_proj's output (kvFull), then the shared rotary key (kPe), then one zero row
 *                    (the values' padding)
 * @param kvFull      {@code [s, b, np (qk_head_dim + v_head_dim)]} view of kvStack; in backward its gradient
 * @param kPe         {@code [s, b, qk_pos_emb_head_dim]} view of kvStack (all-gathered under sequence parallelism)
 * @param kPeShard    {@code [sl, b, qk_pos_emb_head_dim]} this rank's rows under sequence parallelism, else null
 * @param qNormShard  {@code [sl, b, q_lora_rank]} q_layernorm's output before the gather (sequence parallelism with
 *                    --qk-layernorm), else null
 * @param kvNormShard {@code [sl, b, kv_lora_rank]} likewise for kv_layernorm, else null
 * @param keyRows     I32: for each g-row of k {@code [s, b, np, D]}, its kvStack row (k_nope of its head, or kPe)
 * @param valueRows   I32: for each g-row of the padded v {@code [s, b, np, D]}, its kvStack row (or the zero row)
 * @param trimRows    I32: for each g-row of attnTrim, its attnOut row
 * @param ropeScales  F32 per g-row of q/k: 1 on the content channels, YaRN's concentration factor on the rotary ones;
 *                    null when that factor is 1
 * @param dTrimStack  rows of g: attnTrim's gradient, then one zero row (null without gradients, as the rest below)
 * @param dTrim       {@code [s, b, np v_head_dim]} view of dTrimStack
 * @param padRows     I32: for each g-row of dAttn, its dTrimStack row (or the zero row)
 * @param dkvRows     I32: for each g-row of kvFull's gradient, its row in the workspace's dq|dk|dv stack
 * @param kPeSumRows  I32: for each g-row of dk, its dkPeTable row (the last, discarded, for content rows)
 * @param dkPeTable   F32 rows of g: the shared rotary key's gradient summed over the heads, then a discard row
 * @param dkPe        {@code [s, b, qk_pos_emb_head_dim]} that gradient in the compute dtype
 * @param dkPeShard   {@code [sl, b, qk_pos_emb_head_dim]} its reduce-scattered rows under sequence parallelism, else null
 * @param dqNormedFull {@code [s, b, q_lora_rank]} linear_q_up_proj's input gradient before the reduce-scatter (sequence
 *                    parallelism), else null
 * @param dqNormed    {@code [sl, b, q_lora_rank]} its input gradient (null without a query latent)
 * @param dqCompressed {@code [sl, b, q_lora_rank]} q_layernorm's input gradient (dqNormed itself without the norm)
 * @param dKvNormedFull {@code [s, b, kv_lora_rank]} as dqNormedFull for linear_kv_up_proj
 * @param dKvNormed   {@code [sl, b, kv_lora_rank]}
 * @param dKvCompressed {@code [sl, b, kv_lora_rank]}
 * @param dxPart      {@code [sl, b, h]} one projection's input gradient before it is added to the others'
 */
public record MlaWorkspace(Tensor kvStack, Tensor kvFull, Tensor kPe, Tensor kPeShard, Tensor qNormShard,
                           Tensor kvNormShard, Tensor keyRows, Tensor valueRows, Tensor trimRows, Tensor ropeScales,
                           Tensor dTrimStack, Tensor dTrim, Tensor padRows, Tensor dkvRows, Tensor kPeSumRows,
                           Tensor dkPeTable, Tensor dkPe, Tensor dkPeShard, Tensor dqNormedFull, Tensor dqNormed,
                           Tensor dqCompressed, Tensor dKvNormedFull, Tensor dKvNormed, Tensor dKvCompressed,
                           Tensor dxPart) {

    /** c: this rank's shard config (np/t heads); sl: the positions of this rank's sequence shard. */
    static MlaWorkspace allocate(Backend backend, TensorArena arena, TransformerConfig c, int s, int b, boolean grads,
                                 int sl, DType x) {
        MlaConfig m = c.mla();
        int g = m.channelGranule();
        int np = c.numAttentionHeads();
        int n = Math.multiplyExact(s, b);
        int qRows = m.qHeadDim() / g, nope = m.qkHeadDim() / g, pe = m.qkPosEmbHeadDim() / g, vRows = m.vHeadDim() / g;
        int kvRows = nope + vRows;
        long kvFullRows = (long) n * np * kvRows;
        long kPeRows = (long) n * pe;
        Tensor kvStack = backend.allocate(arena, x, kvFullRows + kPeRows + 1, g);
        backend.fill(kvStack.view(kvFullRows + kPeRows, kvFullRows + kPeRows + 1), 0f);
        boolean sp = sl != s;
        boolean norm = c.qkLayernorm();
        boolean qLatent = m.hasQueryLatent();
        int[] keyRows = new int[n * np * qRows];
        int[] valueRows = new int[keyRows.length];
        int[] kPeSumRows = new int[keyRows.length];
        int[] padRows = new int[keyRows.length];
        float[] scales = new float[keyRows.length];
        int[] trimRows = new int[n * np * vRows];
        int[] dkvRows = new int[(int) kvFullRows];
        int zeroKv = (int) (kvFullRows + kPeRows);
        int zeroTrim = trimRows.length;
        int dkStart = n * np * qRows;          // dk's first row in the dq|dk|dv stack
        int dvStart = 2 * dkStart;
        float mscale = (float) m.ropeMscale();
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < np; h++) {
                int head = t * np + h;
                for (int j = 0; j < qRows; j++) {
                    int row = head * qRows + j;
                    boolean content = j < nope;
                    keyRows[row] = content ? head * kvRows + j : (int) kvFullRows + t * pe + (j - nope);
                    valueRows[row] = j < vRows ? head * kvRows + nope + j : zeroKv;
                    kPeSumRows[row] = content ? (int) kPeRows : t * pe + (j - nope);
                    padRows[row] = j < vRows ? head * vRows + j : zeroTrim;
                    scales[row] = content ? 1f : mscale;
                }
                for (int j = 0; j < vRows; j++) {
                    trimRows[head * vRows + j] = head * qRows + j;
                }
                for (int j = 0; j < kvRows; j++) {
                    dkvRows[head * kvRows + j] = j < nope ? dkStart + head * qRows + j : dvStart + head * qRows + (j - nope);
                }
            }
        }
        Tensor ropeScales = null;
        if (mscale != 1f) {
            ropeScales = backend.allocate(arena, DType.F32, scales.length);
            HostTransfer.uploadFloats(backend, scales, ropeScales);
        }
        Tensor dTrimStack = null, dkPeTable = null, dkPe = null;
        if (grads) {
            dTrimStack = backend.allocate(arena, x, trimRows.length + 1L, g);
            backend.fill(dTrimStack.view(zeroTrim, zeroTrim + 1L), 0f);
            dkPeTable = backend.allocate(arena, DType.F32, kPeRows + 1, g);
            dkPe = x == DType.F32 ? dkPeTable.view(0, kPeRows).reshape(s, b, m.qkPosEmbHeadDim())
                    : backend.allocate(arena, x, s, b, m.qkPosEmbHeadDim());
        }
        int qr = m.qLoraRank(), kvr = m.kvLoraRank(), dpe = m.qkPosEmbHeadDim();
        Tensor dqNormed = grads && qLatent ? backend.allocate(arena, x, sl, b, qr) : null;
        Tensor dKvNormed = grads ? backend.allocate(arena, x, sl, b, kvr) : null;
        return new MlaWorkspace(kvStack,
                kvStack.view(0, kvFullRows).reshape(s, b, (long) np * kvRows * g),
                kvStack.view(kvFullRows, kvFullRows + kPeRows).reshape(s, b, dpe),
                sp ? backend.allocate(arena, x, sl, b, dpe) : null,
                sp && norm && qLatent ? backend.allocate(arena, x, sl, b, qr) : null,
                sp && norm ? backend.allocate(arena, x, sl, b, kvr) : null,
                ints(backend, arena, keyRows), ints(backend, arena, valueRows), ints(backend, arena, trimRows), ropeScales,
                dTrimStack,
                grads ? dTrimStack.view(0, zeroTrim).reshape(s, b, (long) np * m.vHeadDim()) : null,
                grads ? ints(backend, arena, padRows) : null,
                grads ? ints(backend, arena, dkvRows) : null,
                grads ? ints(backend, arena, kPeSumRows) : null,
                dkPeTable, dkPe,
                grads && sp ? backend.allocate(arena, x, sl, b, dpe) : null,
                grads && sp && qLatent ? backend.allocate(arena, x, s, b, qr) : null,
                dqNormed,
                grads && qLatent ? (norm ? backend.allocate(arena, x, sl, b, qr) : dqNormed) : null,
                grads && sp ? backend.allocate(arena, x, s, b, kvr) : null,
                dKvNormed,
                grads ? (norm ? backend.allocate(arena, x, sl, b, kvr) : dKvNormed) : null,
                grads ? backend.allocate(arena, x, sl, b, c.hiddenSize()) : null);
    }

    private static Tensor ints(Backend backend, TensorArena arena, int[] rows) {
        Tensor t = backend.allocate(arena, DType.I32, rows.length);
        HostTransfer.uploadInts(backend, rows, t);
        return t;
    }

    /** The forward buffers and indices for the first {@code s} positions (generation; the gradient buffers dropped). */
    MlaWorkspace firstPositions(int s) {
        long full = kPe.dim(0);
        return new MlaWorkspace(kvStack, kvFull.view(0, s), kPe.view(0, s), null, null, null,
                prefix(keyRows, full, s), prefix(valueRows, full, s), prefix(trimRows, full, s),
                ropeScales == null ? null : prefix(ropeScales, full, s),
                null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);
    }

    private static Tensor prefix(Tensor t, long full, int s) {
        return t.view(0, t.numel() / full * s);
    }
}
