package org.megatronj.model.layers;

/**
 * Which of a layer's saved activations selective recompute ({@code --recompute-modules}) leaves out: their buffers are
 * shared by all layers of a micro-batch (each layer's forward overwrites the previous layer's values), and the layer's
 * backward refills them by rerunning the module's forward from the inputs it did keep. The rerun is the same op on the
 * same input, so the refilled values, and with them every gradient, are bitwise those of the run that kept them.
 *
 * @param layernorm input_layernorm's and pre_mlp_layernorm's outputs (ln1Out, ln2Out: one buffer), rerun from the
 *                  layer's input and from the residual stream after attention; their F32 statistics stay per layer
 * @param mlp       the dense MLP's fc1 and activation outputs (fc1Out, actOut), rerun from its input (ln2Out);
 *                  mixture-of-experts layers are left alone, as Megatron's "mlp" leaves them
 * @param moeAct    the routed experts' activation outputs (MoE actOut), rerun from their fc1 outputs, which stay
 * @param sharedExperts the shared experts' fc1 and activation outputs, rerun from the MoE layer's input (ln2Out)
 * @param mlaUpProj multi-latent attention's q, k, v (the up projections' outputs after rope, the core attention's
 *                  inputs), rerun from the kept latents and x
 * @param moe       everything a mixture-of-experts layer keeps (its {@link MoeActivations}: the routing, the permuted
 *                  inputs, the experts' and shared experts' outputs), rerun by the whole MoE forward from its input
 *                  (ln2Out); the router is deterministic and its losses and token counts are taken in backward, once
 */
public record SelectiveRecompute(boolean layernorm, boolean mlp, boolean moeAct, boolean sharedExperts, boolean mlaUpProj,
                                 boolean moe) {

    /** Everything kept per layer. */
    public static final SelectiveRecompute NONE = new SelectiveRecompute(false, false, false, false, false, false);
}
