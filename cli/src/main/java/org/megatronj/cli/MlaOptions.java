package org.megatronj.cli;

import org.megatronj.model.MlaConfig;
import org.megatronj.model.TransformerConfig;
import picocli.CommandLine.Option;

/**
 * Megatron's multi-latent attention flags ({@code --multi-latent-attention} and its "mla" argument group, with
 * {@code --rope-type}), part of the model flags. What Megatron-J does not compute is refused by name.
 */
public final class MlaOptions {
    @Option(names = "--multi-latent-attention", description = "DeepSeek-V2/V3's multi-latent attention in every layer.")
    boolean multiLatentAttention;

    @Option(names = "--q-lora-rank", paramLabel = "R", description = "Rank of the query's latent (none: one"
            + " linear_q_proj from the hidden state).")
    Integer qLoraRank;

    @Option(names = "--kv-lora-rank", paramLabel = "R", defaultValue = "32", description = "Rank of the keys' and values'"
            + " latent (default ${DEFAULT-VALUE}).")
    int kvLoraRank;

    @Option(names = "--qk-head-dim", paramLabel = "D", defaultValue = "128", description = "Content channels of each query"
            + " and key head (default ${DEFAULT-VALUE}).")
    int qkHeadDim;

    @Option(names = "--qk-pos-emb-head-dim", paramLabel = "D", defaultValue = "64", description = "Rotary channels of each"
            + " query and key head, the key's shared by the heads (default ${DEFAULT-VALUE}).")
    int qkPosEmbHeadDim;

    @Option(names = "--v-head-dim", paramLabel = "D", defaultValue = "128", description = "Channels of each value head"
            + " (default ${DEFAULT-VALUE}; at most --qk-head-dim + --qk-pos-emb-head-dim here).")
    int vHeadDim;

    @Option(names = "--rope-type", paramLabel = "T", description = "rope or yarn: MLA's rotary embedding (default yarn, as"
            + " Megatron's MLA); standard attention takes rope only.")
    String ropeType;

    @Option(names = "--rotary-scaling-factor", paramLabel = "S", defaultValue = "1.0", description = "YaRN's scale, and"
            + " the scale of MLA's softmax mscale correction (default ${DEFAULT-VALUE}).")
    float rotaryScalingFactor;

    @Option(names = "--mscale", paramLabel = "M", defaultValue = "1.0", description = "YaRN's mscale (default"
            + " ${DEFAULT-VALUE}).")
    float mscale;

    @Option(names = "--mscale-all-dim", paramLabel = "M", defaultValue = "0.0", description = "YaRN's mscale_all_dim, also"
            + " in MLA's softmax scale (default ${DEFAULT-VALUE}).")
    float mscaleAllDim;

    @Option(names = "--cache-mla-latents", description = "Refused: Megatron caches the latents for its dynamic inference"
            + " engine with Flash MLA; Megatron-J's generation caches each head's keys and values.")
    boolean cacheMlaLatents;

    @Option(names = "--mla-down-proj-fusion", description = "How Megatron computes the same numbers (one fused q/kv down"
            + " projection): accepted with --multi-latent-attention.")
    boolean mlaDownProjFusion;

    @Option(names = {"--yarn-original-max-position-embeddings", "--yarn-beta-fast", "--yarn-beta-slow"}, paramLabel = "V",
            description = "Refused: they configure --position-embedding-type yarn, which Megatron-J does not support (MLA's"
                    + " YaRN keeps MLATransformerConfig's 4096 original positions and betas 32 and 1, as Megatron's does).")
    String yarnPositionEmbeddingFlag;

    @Option(names = {"--yarn-correction-range-round-to-int", "--no-yarn-correction-range-round-to-int"},
            description = "Refused, as the flags above.")
    boolean yarnRounding;

    /**
     * The MLA configuration, or null without {@code --multi-latent-attention}; refuses {@code --rope-type yarn} for
     * standard attention in Megatron's words and the flags Megatron-J does not compute.
     */
    MlaConfig toConfig() {
        if (yarnPositionEmbeddingFlag != null || yarnRounding) {
            throw new IllegalArgumentException("--yarn-original-max-position-embeddings, --yarn-beta-fast, --yarn-beta-slow"
                    + " and --[no-]yarn-correction-range-round-to-int configure --position-embedding-type yarn, which"
                    + " Megatron-J does not support (MLA's YaRN, --rope-type yarn, uses Megatron's fixed 4096 / 32 / 1)");
        }
        if (!multiLatentAttention) {
            if (ropeType != null && !ropeType.equals("rope")) {   // Megatron's core_transformer_config_from_args
                throw new IllegalArgumentException("Common attention only support rope_type=\"rope\", but got " + ropeType
                        + ".");
            }
            if (mlaDownProjFusion) {
                throw new IllegalArgumentException("--mla-down-proj-fusion requires --multi-latent-attention");
            }
            if (cacheMlaLatents || qLoraRank != null) {
                throw new IllegalArgumentException("--cache-mla-latents and --q-lora-rank need --multi-latent-attention");
            }
            return null;
        }
        if (cacheMlaLatents) {
            throw new IllegalArgumentException("--cache-mla-latents is not supported by Megatron-J: Megatron caches the"
                    + " latents for its dynamic inference engine with Flash MLA; here generation caches each head's keys"
                    + " and values");
        }
        MlaConfig.RopeType type = ropeType == null ? MlaConfig.RopeType.YARN : MlaConfig.RopeType.parse(ropeType);
        return MlaConfig.defaults()
                .withDims(qLoraRank == null ? 0 : positive("--q-lora-rank", qLoraRank), kvLoraRank, qkHeadDim,
                        qkPosEmbHeadDim, vHeadDim)
                .withRope(type, rotaryScalingFactor, mscale, mscaleAllDim).validate();
    }

    private static int positive(String flag, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(flag + " must be >= 1, got " + value);
        }
        return value;
    }

    /** {@code --use-checkpoint-args}: the checkpoint's MLA (or none), logged as Megatron logs what it takes. */
    void takeFromCheckpoint(MlaConfig saved, java.util.function.BiConsumer<String, Object> took) {
        multiLatentAttention = saved != null;
        took.accept("multi_latent_attention", multiLatentAttention ? "True" : "False");
        if (saved == null) {
            return;
        }
        qLoraRank = saved.hasQueryLatent() ? saved.qLoraRank() : null;
        took.accept("q_lora_rank", qLoraRank == null ? "None" : qLoraRank);
        kvLoraRank = saved.kvLoraRank();
        took.accept("kv_lora_rank", kvLoraRank);
        qkHeadDim = saved.qkHeadDim();
        took.accept("qk_head_dim", qkHeadDim);
        qkPosEmbHeadDim = saved.qkPosEmbHeadDim();
        took.accept("qk_pos_emb_head_dim", qkPosEmbHeadDim);
        vHeadDim = saved.vHeadDim();
        took.accept("v_head_dim", vHeadDim);
        ropeType = saved.ropeType().flagValue();
        took.accept("rope_type", ropeType);
        rotaryScalingFactor = saved.rotaryScalingFactor();
        took.accept("rotary_scaling_factor", rotaryScalingFactor);
        mscale = saved.mscale();
        took.accept("mscale", mscale);
        mscaleAllDim = saved.mscaleAllDim();
        took.accept("mscale_all_dim", mscaleAllDim);
    }

    /**
     * Refuses MLA off the CPU: the CUDA attention kernels take head dims 32, 64, 96 and 128 (MLA's query/key heads are
     * qk + pe, 192 for DeepSeek) and MLA's CUDA path has not been run.
     */
    static void checkDevice(String device, TransformerConfig config) {
        if (config.mla() != null && !"cpu".equalsIgnoreCase(device.trim())) {
            throw new IllegalArgumentException("--multi-latent-attention runs on --device cpu only in Megatron-J (the CUDA"
                    + " attention kernels take head dims 32, 64, 96 and 128, not MLA's " + config.mla().qHeadDim() + ")");
        }
    }
}
