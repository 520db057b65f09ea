package org.megatronj.model;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;

import org.megatronj.model.layers.SelectiveRecompute;

/**
 * Megatron's activation recomputation settings:
 * <ul>
 *   <li>{@code --recompute-activations} / {@code --recompute-granularity selective}: recompute the
 *       {@code --recompute-modules} in backward ({@link Module}). The default, core_attn (the softmax
 *       probabilities), costs nothing here: the memory-efficient attention op never stores them (it keeps
 *       the output and the per-row log-sum-exp and rebuilds the rest in backward). layernorm, mlp, moe_act
 *       and shared_experts leave their outputs in one buffer per micro-batch that the layers share and
 *       each layer's backward refills ({@link SelectiveRecompute}).</li>
 *   <li>{@code --recompute-granularity full --recompute-method uniform --recompute-num-layers N}: the
 *       layers of a stage form groups of N; only each group's input is kept and backward reruns the
 *       group's forward just before its backward.</li>
 *   <li>{@code --recompute-method block --recompute-num-layers N}: the first N layers of each
 *       stage keep only their inputs and are rerun one by one; the other layers keep everything.</li>
 * </ul>
 * Reruns draw the same dropout masks, so gradients are bitwise those of the run without recompute.
 */
public record ActivationRecompute(Granularity granularity, Method method, int numLayers, Set<Module> modules) {

    /**
     * Megatron-core's {@code --recompute-modules} names. core_attn, layernorm, mlp, moe_act, shared_experts, mla_up_proj
     * and moe are recomputed ({@link SelectiveRecompute}); the others name model variants Megatron-J does not have and
     * are refused by name ({@link #checkModules}).
     */
    public enum Module {
        CORE_ATTN("core_attn"), MOE_ACT("moe_act"), LAYERNORM("layernorm"), MLA_UP_PROJ("mla_up_proj"), MLP("mlp"),
        MOE("moe"), SHARED_EXPERTS("shared_experts"), GDN_NORM_OUT("gdn_norm_out"), GDP_IN_PROJ("gdp_in_proj"),
        GDP_QKV("gdp_qkv"), MHC("mhc");

        public final String flag;

        Module(String flag) {
            this.flag = flag;
        }

        /** A {@code --recompute-modules} value, refused with Megatron's sentence when it is not one of its names. */
        public static Module parse(String name) {
            for (Module m : values()) {
                if (m.flag.equals(name)) {
                    return m;
                }
            }
            StringBuilder allowed = new StringBuilder();
            for (Module m : values()) {
                allowed.append(allowed.isEmpty() ? "" : ", ").append('\'').append(m.flag).append('\'');
            }
            throw new IllegalArgumentException("Invalid choices for recompute_modules: {'" + name + "'}. Allowed modules are: {"
                    + allowed + "}");
        }
    }

    /** Megatron's default {@code --recompute-modules}: the attention core only. */
    public static final Set<Module> DEFAULT_MODULES = Set.of(Module.CORE_ATTN);

    public enum Granularity {
        NONE, SELECTIVE, FULL;

        /** {@code --recompute-granularity full|selective}; null or empty means none. */
        public static Granularity parse(String flag) {
            if (flag == null || flag.isEmpty()) {
                return NONE;
            }
            return switch (flag) {
                case "full" -> FULL;
                case "selective" -> SELECTIVE;
                default -> throw new IllegalArgumentException("--recompute-granularity must be full or selective, got '"
                        + flag + "'");
            };
        }
    }

    public enum Method {
        UNIFORM, BLOCK;

        /** {@code --recompute-method uniform|block}. */
        public static Method parse(String flag) {
            return switch (flag) {
                case "uniform" -> UNIFORM;
                case "block" -> BLOCK;
                default -> throw new IllegalArgumentException("--recompute-method must be uniform or block, got '" + flag + "'");
            };
        }
    }

    public ActivationRecompute {
        if (granularity == null) {
            throw new IllegalArgumentException("recompute granularity must not be null");
        }
        modules = modules == null ? DEFAULT_MODULES : Set.copyOf(modules);
        if (granularity == Granularity.FULL) {
            if (method == null) {
                throw new IllegalArgumentException("--recompute-granularity full needs --recompute-method uniform or block");
            }
            if (numLayers < 1) {
                throw new IllegalArgumentException("--recompute-granularity full needs --recompute-num-layers >= 1, got "
                        + numLayers);
            }
        }
    }

    /** The settings without {@code --recompute-modules} (Megatron's default, core_attn). */
    public ActivationRecompute(Granularity granularity, Method method, int numLayers) {
        this(granularity, method, numLayers, DEFAULT_MODULES);
    }

    public static ActivationRecompute none() {
        return new ActivationRecompute(Granularity.NONE, null, 0);
    }

    /** {@code --recompute-granularity selective} with the default modules (core_attn). */
    public static ActivationRecompute selective() {
        return new ActivationRecompute(Granularity.SELECTIVE, null, 0);
    }

    /** {@code --recompute-granularity selective --recompute-modules ...}. */
    public static ActivationRecompute selective(Set<Module> modules) {
        return new ActivationRecompute(Granularity.SELECTIVE, null, 0, modules);
    }

    /** {@code --recompute-granularity selective --recompute-modules} with Megatron's names, e.g. "mlp", "layernorm". */
    public static ActivationRecompute selective(List<String> names) {
        Set<Module> modules = EnumSet.noneOf(Module.class);
        for (String name : names) {
            modules.add(Module.parse(name));
        }
        return selective(modules);
    }

    public static ActivationRecompute full(Method method, int numLayers) {
        return new ActivationRecompute(Granularity.FULL, method, numLayers);
    }

    /**
     * Megatron's checks of {@code --recompute-modules} against the model (its sentences), then the modules this build
     * does not recompute, refused by name. {@code moeGroupedGemm}, {@code sharedExpertOverlap}: the flags
     * {@code --moe-grouped-gemm} and {@code --moe-shared-expert-overlap}. core_attn needs nothing: the memory-efficient
     * attention never stores the probabilities it would recompute.
     */
    public void checkModules(TransformerConfig c, boolean moeGroupedGemm, boolean sharedExpertOverlap) {
        if (granularity != Granularity.SELECTIVE) {
            return;
        }
        if (modules.contains(Module.MOE_ACT) && !moeGroupedGemm) {
            throw new IllegalArgumentException("moe_act in recompute_modules is only supported with moe_grouped_gemm.");
        }
        if (modules.contains(Module.MLA_UP_PROJ) && c.mla() == null) {
            throw new IllegalArgumentException("mla_up_proj in recompute_modules is only supported with"
                    + " multi_latent_attention.");
        }
        if (modules.contains(Module.GDN_NORM_OUT)) {
            throw new IllegalArgumentException("gdn_norm_out in recompute_modules is only supported with"
                    + " experimental_attention_variant='gdn' or 'gdn2'.");
        }
        if (modules.contains(Module.MHC)) {
            throw new IllegalArgumentException("'mhc' in recompute_modules requires enable_mhc_connections=True.");
        }
        if (modules.contains(Module.SHARED_EXPERTS) && sharedExpertOverlap && c.moe() != null
                && c.moe().sharedExpertIntermediateSize() > 0) {
            throw new IllegalArgumentException("shared_experts recompute cannot work with --moe-shared-expert-overlap.");
        }
        for (Module m : EnumSet.of(Module.GDP_IN_PROJ, Module.GDP_QKV)) {
            if (modules.contains(m)) {   // Megatron's gated delta product mixer, which Megatron-J does not have
                throw new IllegalArgumentException("--recompute-modules " + m.flag + " recomputes part of the gated delta"
                        + " product attention variant, which Megatron-J does not have");
            }
        }
    }

    /**
     * Megatron's deprecated {@code --moe-layer-recompute}: selective recompute with "moe" added to the modules (the
     * default core_attn when none were given); refused with full recompute, in Megatron's words.
     */
    public ActivationRecompute withMoeLayerRecompute() {
        if (granularity == Granularity.FULL) {
            throw new IllegalArgumentException("Do not set --moe-layer-recompute with full recompute granularity. ");
        }
        Set<Module> with = EnumSet.of(Module.MOE);
        with.addAll(modules);
        return selective(with);
    }

    /** Whether selective recompute covers {@code module}. */
    public boolean recomputes(Module module) {
        return granularity == Granularity.SELECTIVE && modules.contains(module);
    }

    /** What the layers' activation buffers leave out and their backward refills ({@link SelectiveRecompute}). */
    public SelectiveRecompute layerRecompute() {
        return new SelectiveRecompute(recomputes(Module.LAYERNORM), recomputes(Module.MLP), recomputes(Module.MOE_ACT),
                recomputes(Module.SHARED_EXPERTS), recomputes(Module.MLA_UP_PROJ), recomputes(Module.MOE));
    }

    /** Whether layer {@code l} (index within a stage of {@code layers}) keeps only its group's input. */
    boolean recomputed(int l) {
        return granularity == Granularity.FULL && (method == Method.UNIFORM || l < numLayers);
    }

    /** The first layer of the recompute group that ends with layer {@code l}, or -1 when {@code l} ends none. */
    int groupStartEndingAt(int l, int layers) {
        if (!recomputed(l)) {
            return -1;
        }
        if (method == Method.BLOCK) {
            return l;
        }
        int start = l / numLayers * numLayers;
        int last = Math.min(start + numLayers, layers) - 1;
        return l == last ? start : -1;
    }

    /** How many sets of per-layer activations a stage of {@code layers} layers needs. */
    int activationSets(int layers) {
        if (granularity != Granularity.FULL) {
            return layers;
        }
        if (method == Method.UNIFORM) {
            return Math.min(numLayers, layers);
        }
        int block = Math.min(numLayers, layers);
        return (block > 0 ? 1 : 0) + layers - block;
    }

    /** Which set layer {@code l} uses. */
    int activationSet(int l) {
        if (granularity != Granularity.FULL) {
            return l;
        }
        if (method == Method.UNIFORM) {
            return l % numLayers;
        }
        return l < numLayers ? 0 : 1 + l - numLayers;
    }
}
