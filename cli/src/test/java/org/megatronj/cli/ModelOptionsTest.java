package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class ModelOptionsTest {
    private static boolean geluTanh(String... flags) {
        ModelOptions options = new ModelOptions();
        String[] base = {"--num-layers", "1", "--hidden-size", "8", "--num-attention-heads", "2"};
        String[] all = new String[base.length + flags.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(flags, 0, all, base.length, flags.length);
        new CommandLine(options).parseArgs(all);
        return options.toConfig(16, 8).geluTanh();
    }

    /** Megatron's fused bias-GeLU is the tanh form; unfused (or without biases, where Megatron turns the fusion off) it is erf. */
    @Test
    void geluFormFollowsMegatronsFusionRules() {
        assertEquals(true, geluTanh());
        assertEquals(false, geluTanh("--no-bias-gelu-fusion"));
        assertEquals(false, geluTanh("--disable-bias-linear"));
        assertEquals(true, geluTanh("--disable-bias-linear", "--openai-gelu"));
        assertEquals(true, geluTanh("--no-bias-gelu-fusion", "--openai-gelu"));
    }

    /** Unset sizes are derived; a size given as 0 is an error, not "unset". */
    @Test
    void aSizeGivenAsZeroIsRefused() {
        for (String flag : new String[] {"--ffn-hidden-size", "--kv-channels", "--max-position-embeddings"}) {
            ModelOptions options = new ModelOptions();
            new CommandLine(options).parseArgs("--num-layers", "1", "--hidden-size", "8", "--num-attention-heads", "2", flag, "0");
            var e = assertThrows(IllegalArgumentException.class, () -> options.toConfig(16, 8));
            assertEquals(flag + " must be >= 1, got 0", e.getMessage());
        }
    }
}
