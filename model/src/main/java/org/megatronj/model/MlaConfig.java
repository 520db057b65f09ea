package org.megatronj.model;

/**
 * The multi-latent attention knobs of Megatron-core's {@code MLATransformerConfig} ({@code --multi-latent-attention} and
 * the flags of Megatron's "mla" argument group), DeepSeek-V2/V3's attention: the queries come from a low-rank latent
 * ({@code --q-lora-rank}) or straight from the hidden state, the keys and values from one shared latent of
 * {@code --kv-lora-rank} channels, and each head's query/key vector is {@code qk_head_dim} content channels followed by
 * {@code qk_pos_emb_head_dim} rotary channels (the key's rotary part is one vector shared by all heads).
 *
 * <p>A {@link TransformerConfig} with {@code mla == null} has standard attention.
 *
 * @param qLoraRank                     {@code --q-lora-rank}; 0 for Megatron's None: a plain {@code linear_q_proj}
 * @param kvLoraRank                    {@code --kv-lora-rank} (Megatron's flag default 32)
 * @param qkHeadDim                     {@code --qk-head-dim} (128): the content channels of each query/key head
 * @param qkPosEmbHeadDim               {@code --qk-pos-emb-head-dim} (64): the rotary channels of each query/key head
 * @param vHeadDim                      {@code --v-head-dim} (128)
 * @param ropeType                      {@code --rope-type rope|yarn} (Megatron's MLA default yarn)
 * @param rotaryScalingFactor           {@code --rotary-scaling-factor} (1.0): YaRN's scale s, and the s of MLA's softmax
 *                                      scale correction whatever the rope type, as Megatron's MultiLatentAttention
 * @param originalMaxPositionEmbeddings YaRN's original context (4096: MLATransformerConfig's value, which Megatron's
 *                                      flags do not reach)
 * @param betaFast                      YaRN's beta_fast (32, likewise)
 * @param betaSlow                      YaRN's beta_slow (1, likewise)
 * @param mscale                        {@code --mscale} (1.0)
 * @param mscaleAllDim                  {@code --mscale-all-dim} (0.0)
 */
public record MlaConfig(int qLoraRank, int kvLoraRank, int qkHeadDim, int qkPosEmbHeadDim, int vHeadDim,
                        RopeType ropeType, float rotaryScalingFactor, int originalMaxPositionEmbeddings, float betaFast,
                        float betaSlow, float mscale, float mscaleAllDim) {

    /** {@code --rope-type}: how MLA rotates the rotary channels. */
    public enum RopeType implements FlagValue {
        ROPE("rope"), YARN("yarn");

        private final String flagValue;

        RopeType(String flagValue) {
            this.flagValue = flagValue;
        }

        @Override
        public String flagValue() {
            return flagValue;
        }

        public static RopeType parse(String value) {
            return FlagValue.parse(RopeType.class, "--rope-type", value);
        }
    }

    /** Megatron's flag defaults: no query latent, kv latent 32, heads 128 + 64 (rotary) and 128 (values), YaRN of scale 1. */
    public static MlaConfig defaults() {
        return new MlaConfig(0, 32, 128, 64, 128, RopeType.YARN, 1f, 4096, 32f, 1f, 1f, 0f);
    }

    /** Small dimensions (tests): {@code qLoraRank} 0 for a plain linear_q_proj. */
    public static MlaConfig of(int qLoraRank, int kvLoraRank, int qkHeadDim, int qkPosEmbHeadDim, int vHeadDim) {
        return defaults().withDims(qLoraRank, kvLoraRank, qkHeadDim, qkPosEmbHeadDim, vHeadDim);
    }

    public MlaConfig withDims(int qLora, int kvLora, int qk, int pos, int v) {
        return new MlaConfig(qLora, kvLora, qk, pos, v, ropeType, rotaryScalingFactor, originalMaxPositionEmbeddings,
                betaFast, betaSlow, mscale, mscaleAllDim);
    }

    /** This config with {@code --rope-type}, {@code --rotary-scaling-factor}, {@code --mscale} and {@code --mscale-all-dim}. */
    public MlaConfig withRope(RopeType type, float scalingFactor, float mscale, float mscaleAllDim) {
        return new MlaConfig(qLoraRank, kvLoraRank, qkHeadDim, qkPosEmbHeadDim, vHeadDim, type, scalingFactor,
                originalMaxPositionEmbeddings, betaFast, betaSlow, mscale, mscaleAllDim);
    }

    /** This config with YaRN's original context and correction betas. */
    public MlaConfig withYarnRange(int originalMaxPositions, float betaFast, float betaSlow) {
        return new MlaConfig(qLoraRank, kvLoraRank, qkHeadDim, qkPosEmbHeadDim, vHeadDim, ropeType, rotaryScalingFactor,
                originalMaxPositions, betaFast, betaSlow, mscale, mscaleAllDim);
    }

    /** Whether the queries have their own latent ({@code linear_q_down_proj}, q_layernorm, {@code linear_q_up_proj}). */
    public boolean hasQueryLatent() {
        return qLoraRank > 0;
    }

    /** The query/key head dimension the core attention sees: {@code qk_head_dim + qk_pos_emb_head_dim}. */
    public int qHeadDim() {
        return qkHeadDim + qkPosEmbHeadDim;
    }

    /**
     * Megatron's {@code softmax_scale = mscale^2 / sqrt(q_head_dim)} with {@code mscale = yarn_get_mscale(
     * rotary_scaling_factor, mscale_all_dim)}: applied for either rope type, as MultiLatentAttention's constructor.
     */
    public double softmaxScale() {
        double m = Yarn.getMscale(rotaryScalingFactor, mscaleAllDim);
        return m * m / Math.sqrt(qHeadDim());
    }

    /**
     * The factor on cos and sin of the rotary channels: YaRN's concentration factor
     * {@code yarn_get_mscale(s, mscale) / yarn_get_mscale(s, mscale_all_dim)}, 1 with plain rope.
     */
    public double ropeMscale() {
        return ropeType == RopeType.YARN ? Yarn.concentrationFactor(rotaryScalingFactor, mscale, mscaleAllDim) : 1.0;
    }

    /** Checks every knob; throws a sentence naming the flag. */
    public MlaConfig validate() {
        if (qLoraRank < 0) {
            throw new IllegalArgumentException("--q-lora-rank must be positive (or left out for a plain query projection), got "
                    + qLoraRank);
        }
        positive("--kv-lora-rank", kvLoraRank);
        positive("--qk-head-dim", qkHeadDim);
        positive("--qk-pos-emb-head-dim", qkPosEmbHeadDim);
        positive("--v-head-dim", vHeadDim);
        if (qkPosEmbHeadDim % 2 != 0) {
            throw new IllegalArgumentException("--qk-pos-emb-head-dim must be even (rope rotates channel pairs), got "
                    + qkPosEmbHeadDim);
        }
        if (qkHeadDim % 2 != 0) {
            throw new IllegalArgumentException("--qk-head-dim must be even in Megatron-J (the rotary pairs of a head start at "
                    + "an even channel), got " + qkHeadDim);
        }
        if (vHeadDim > qHeadDim()) {
            throw new IllegalArgumentException("--v-head-dim (" + vHeadDim + ") must not exceed --qk-head-dim + "
                    + "--qk-pos-emb-head-dim (" + qHeadDim() + ") in Megatron-J: the values are padded to the query/key head"
                    + " dim for the core attention");
        }
        if (ropeType == null) {
            throw new IllegalArgumentException("--rope-type must be rope or yarn");
        }
        if (!(rotaryScalingFactor > 0) || Float.isInfinite(rotaryScalingFactor)) {
            throw new IllegalArgumentException("--rotary-scaling-factor must be a positive number, got " + rotaryScalingFactor);
        }
        positive("YaRN's original max position embeddings", originalMaxPositionEmbeddings);
        if (!Float.isFinite(mscale) || !Float.isFinite(mscaleAllDim)) {
            throw new IllegalArgumentException("--mscale and --mscale-all-dim must be finite, got " + mscale + " and "
                    + mscaleAllDim);
        }
        return this;
    }

    private static void positive(String flag, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(flag + " must be positive, got " + value);
        }
    }

    /** The row width that divides every channel group MLA cuts its tensors into (the gathers' granularity). */
    public int channelGranule() {
        return gcd(gcd(qkHeadDim, qkPosEmbHeadDim), vHeadDim);
    }

    private static int gcd(int a, int b) {
        return b == 0 ? a : gcd(b, a % b);
    }

    /**
     * YaRN (Peng et al. 2023) as Megatron-core's {@code yarn_rotary_pos_embedding.py}: the frequencies blend the
     * original ({@code extra}) and the interpolated ({@code inter} = extra / s) ones along a linear ramp between the
     * correction dimensions of {@code beta_fast} and {@code beta_slow} rotations over the original context; the cos and
     * sin tables are multiplied by the concentration factor.
     */
    public static final class Yarn {
        private Yarn() {
        }

        /** Megatron's {@code _yarn_get_mscale}: 1 for {@code scale <= 1}, else {@code 0.1 mscale ln(scale) + 1}. */
        public static double getMscale(double scale, double mscale) {
            return scale <= 1 ? 1.0 : 0.1 * mscale * Math.log(scale) + 1.0;
        }

        /** {@code _yarn_get_concentration_factor(s, mscale, mscale_all_dim)}. */
        public static double concentrationFactor(double scale, double mscale, double mscaleAllDim) {
            return getMscale(scale, mscale) / getMscale(scale, mscaleAllDim);
        }

        /** {@code _yarn_find_correction_dim}: the dimension that turns {@code numRotations} times over the context. */
        static double correctionDim(double numRotations, int dim, double base, int maxPositions) {
            return dim * Math.log(maxPositions / (numRotations * 2 * Math.PI)) / (2 * Math.log(base));
        }

        /**
         * The {@code dim/2} inverse frequencies of YaRN over {@code dim} rotary channels, in F32 as torch computes them
         * ({@code inv_freq_inter * (1 - mask) + inv_freq_extra * mask}, the mask one minus the clamped ramp between the
         * floor and ceiling of the correction range).
         */
        public static float[] invFreq(int dim, float base, float scale, int originalMaxPositions, float betaFast,
                                      float betaSlow) {
            double low = Math.max(Math.floor(correctionDim(betaFast, dim, base, originalMaxPositions)), 0);
            double high = Math.min(Math.ceil(correctionDim(betaSlow, dim, base, originalMaxPositions)), dim - 1);
            if (low == high) {
                high += 0.001;   // Megatron's guard against a zero-width ramp
            }
            float lowF = (float) low;
            float span = (float) (high - low);
            float[] out = new float[dim / 2];
            for (int i = 0; i < dim / 2; i++) {
                // torch: base ** (arange(0, dim, 2) / dim) in fp32, then 1 / (...) and 1 / (scale * ...)
                float exponent = (float) (2 * i) / dim;
                float pow = (float) Math.pow(base, exponent);
                float extra = 1f / pow;
                float inter = 1f / (scale * pow);
                float ramp = Math.min(Math.max(((float) i - lowF) / span, 0f), 1f);
                float mask = 1f - ramp;
                out[i] = inter * (1f - mask) + extra * mask;
            }
            return out;
        }
    }
}
