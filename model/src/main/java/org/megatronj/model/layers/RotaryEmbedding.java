package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.MlaConfig;
import org.megatronj.model.TransformerConfig;

/**
 * Megatron's rotary position embedding, "rotate half" or interleaved ({@code --rotary-interleaved}). The angle
 * table holds {@code theta_i = p * base^(-2i/r)} for each position p and pair i in Megatron's layout:
 * {@code cat(theta, theta)} (channel c has {@code theta_(c mod r/2)}), or interleaved each theta twice in a row
 * (channel c has {@code theta_(c/2)}). It is computed once for every position up to {@code maxPositions}; a run at
 * positions {@code [start, start + s)} uses rows of it.
 */
public final class RotaryEmbedding {
    private final Backend backend;
    private final Tensor freqs;   // F32 [maxPositions, r]
    private final boolean interleaved;

    public RotaryEmbedding(Backend backend, TensorArena arena, int maxPositions, int rotaryDim, float base) {
        this(backend, arena, maxPositions, rotaryDim, base, 0f, 0f, false);
    }

    /**
     * The rope of {@code c}: its rotary channels and base, position interpolation, Llama 3.x frequency scaling and
     * layout.
     */
    public RotaryEmbedding(Backend backend, TensorArena arena, TransformerConfig c) {
        this(backend, arena, c.maxPositionEmbeddings(), c.rotaryDim(), c.rotaryBase(), c.rotarySeqLenInterpolationFactor(),
                c.useRopeScaling() ? c.ropeScalingFactor() : 0f, c.rotaryInterleaved());
    }

    /**
     * {@code interpolationFactor} ({@code --rotary-seq-len-interpolation-factor}, 0 none): the positions are divided by it
     * (Megatron's {@code seq *= 1 / factor}); {@code llama3Factor} ({@code --use-rope-scaling --rope-scaling-factor}, 0 none):
     * Llama 3.x's frequency scaling ({@link #llama3Scaled}); {@code interleaved} ({@code --rotary-interleaved}): the
     * pairs are neighbouring channels.
     */
    public RotaryEmbedding(Backend backend, TensorArena arena, int maxPositions, int rotaryDim, float base,
                           float interpolationFactor, float llama3Factor, boolean interleaved) {
        if (rotaryDim % 2 != 0) {
            throw new IllegalArgumentException("rotary dimension must be even, got " + rotaryDim);
        }
        this.backend = backend;
        this.interleaved = interleaved;
        int half = rotaryDim / 2;
        float positionScale = interpolationFactor > 0 ? (float) (1.0 / interpolationFactor) : 1f;
        float[] table = new float[maxPositions * rotaryDim];
        for (int c = 0; c < half; c++) {
            // Megatron: inv_freq = 1 / base^(arange(0, r, 2) / r), computed in fp32.
            float invFreq = (float) (1.0 / Math.pow(base, (2.0 * c) / rotaryDim));
            if (llama3Factor > 0) {
                invFreq = llama3Scaled(invFreq, llama3Factor);
            }
            for (int p = 0; p < maxPositions; p++) {
                float angle = (interpolationFactor > 0 ? p * positionScale : p) * invFreq;
                table[p * rotaryDim + (interleaved ? 2 * c : c)] = angle;
                table[p * rotaryDim + (interleaved ? 2 * c + 1 : c + half)] = angle;
            }
        }
        this.freqs = backend.allocate(arena, DType.F32, maxPositions, rotaryDim);
        try (TensorArena staging = TensorArena.named("rope-staging")) {
            backend.copy(staging.fromFloats(table, maxPositions, rotaryDim), freqs);
            backend.synchronize();   // the staging memory is freed next
        }
    }

    /** A table computed elsewhere: F32 {@code table [maxPositions * width]} of angles per position and channel. */
    private RotaryEmbedding(Backend backend, TensorArena arena, float[] table, int maxPositions, int width,
                            boolean interleaved) {
        this.backend = backend;
        this.interleaved = interleaved;
        this.freqs = backend.allocate(arena, DType.F32, maxPositions, width);
        try (TensorArena staging = TensorArena.named("rope-staging")) {
            backend.copy(staging.fromFloats(table, maxPositions, width), freqs);
            backend.synchronize();
        }
    }

    /**
     * Multi-latent attention's rope over whole query/key heads of {@code qk_head_dim + qk_pos_emb_head_dim} channels:
     * zero angles (the identity) on the content channels, then the rotary channels in neighbouring pairs, pair i
     * turning by {@code p * inv_freq_i}: Megatron's {@code RotaryEmbedding(qk_pos_emb_head_dim, rotary_base)} frequencies
     * with {@code --rope-type rope}, YaRN's ({@link MlaConfig.Yarn#invFreq}) with {@code yarn}. (Megatron's MLA rope
     * de-interleaves the pairs before rotating halves: the same rotation of each pair.)
     */
    public static RotaryEmbedding forMla(Backend backend, TensorArena arena, TransformerConfig c) {
        MlaConfig m = c.mla();
        int pe = m.qkPosEmbHeadDim();
        int width = m.qHeadDim();
        float[] invFreq = mlaInvFreq(m, c.rotaryBase());
        int maxPositions = c.maxPositionEmbeddings();
        float[] table = new float[maxPositions * width];
        for (int p = 0; p < maxPositions; p++) {
            for (int i = 0; i < pe / 2; i++) {
                float angle = p * invFreq[i];   // torch.outer of the fp32 positions and frequencies
                table[p * width + m.qkHeadDim() + 2 * i] = angle;
                table[p * width + m.qkHeadDim() + 2 * i + 1] = angle;
            }
        }
        return new RotaryEmbedding(backend, arena, table, maxPositions, width, true);
    }

    /** The {@code qk_pos_emb_head_dim / 2} inverse frequencies of MLA's rope type. */
    public static float[] mlaInvFreq(MlaConfig m, float base) {
        int pe = m.qkPosEmbHeadDim();
        if (m.ropeType() == MlaConfig.RopeType.YARN) {
            return MlaConfig.Yarn.invFreq(pe, base, m.rotaryScalingFactor(), m.originalMaxPositionEmbeddings(),
                    m.betaFast(), m.betaSlow());
        }
        float[] out = new float[pe / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) (1.0 / Math.pow(base, (2.0 * i) / pe));
        }
        return out;
    }

    /**
     * Llama 3.x's rope scaling (Megatron's {@code _apply_scaling}, after Hugging Face's): with the original context of
     * 8192 positions, frequencies of wavelength above 8192 are divided by {@code factor}, those below 8192/4 kept, and
     * those between blended smoothly; in fp32, as torch computes it.
     */
    static float llama3Scaled(float invFreq, float factor) {
        final float oldContext = 8192f, lowFreqFactor = 1f, highFreqFactor = 4f;
        float lowFreqWavelen = oldContext / lowFreqFactor;
        float highFreqWavelen = oldContext / highFreqFactor;
        float wavelen = (float) (2 * Math.PI) / invFreq;
        float scaled = wavelen > lowFreqWavelen ? invFreq / factor : invFreq;
        if (wavelen < highFreqWavelen || wavelen > lowFreqWavelen) {
            return scaled;
        }
        float smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        return (1 - smooth) * scaled / factor + smooth * scaled;
    }

    /** x {@code [s, b, heads, d]} rotated in place for positions {@code [start, start + s)}. */
    public void forward(Tensor x, int start) {
        backend.rotaryForward(x, freqs.view(start, start + x.dim(0)), x, interleaved);
    }

    /** The inverse rotation of dx {@code [s, b, heads, d]} in place. */
    public void backward(Tensor dx, int start) {
        backend.rotaryBackward(dx, freqs.view(start, start + dx.dim(0)), dx, interleaved);
    }
}
