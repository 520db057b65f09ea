package org.megatronj.cli;

import org.megatronj.model.Precision;
import picocli.CommandLine.Option;

/**
 * {@code --bf16} / {@code --fp16} for {@code generate}, {@code serve} and {@code evaluate}: run the
 * model in the 16-bit precision it was trained in, as Megatron's text generation server does. The
 * layers then read a 16-bit copy of the checkpoint's F32 weights (cast once at load) and keep
 * 16-bit activations and KV cache; norm statistics, softmax and the logits stay F32. On the CPU a
 * decode step reads half the bytes, so batch-1 generation, bound by the weights' memory traffic,
 * runs about twice as fast. The flags of training's loss scaling do not apply here.
 */
public final class InferencePrecisionOptions {
    @Option(names = "--bf16", description = "Compute in bf16: 16-bit weights, activations and KV cache (F32 logits).")
    boolean bf16;

    @Option(names = "--fp16", description = "Compute in fp16: 16-bit weights, activations and KV cache (F32 logits).")
    boolean fp16;

    /** The compute precision; both flags at once is an error, as in Megatron. */
    public Precision precision() {
        return Precision.of(fp16, bf16);
    }
}
