package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.megatronj.io.tokenizer.NullTokenizer;
import org.megatronj.io.tokenizer.TokenizerType;

/** Megatron's pad id rule for GPT datasets (megatron_dataset.py): the tokenizer's pad, unless it has none or it is EOD. */
class GptDataOptionsTest {
    private static final Path GPT2 = Path.of("..", "data", "gpt2");

    @Test
    void datasetPadIdIsTheTokenizersUnlessItIsEod() {
        assertEquals(-1, GptDataOptions.datasetPadId(NullTokenizer.Form.TODAY.create(100)), "no pad");
        assertEquals(7, GptDataOptions.datasetPadId(new NullTokenizer.Form(false, null, 7).create(100)));
        assertEquals(-1, GptDataOptions.datasetPadId(new NullTokenizer.Form(false, 3, 3).create(100)), "pad = EOD");
        var gpt2 = TokenizerType.GPT2BPETokenizer.create(GPT2.resolve("gpt2-vocab.json"), GPT2.resolve("gpt2-merges.txt"), null, 0);
        assertEquals(-1, GptDataOptions.datasetPadId(gpt2), "GPT-2 has no pad");
    }
}
