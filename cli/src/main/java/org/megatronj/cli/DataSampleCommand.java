package org.megatronj.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.concurrent.Callable;

import org.megatronj.io.gpt.GptDataSplits;
import org.megatronj.io.gpt.GptDatasetFactory;
import org.megatronj.io.gpt.GptSample;
import org.megatronj.io.gpt.GptSampleSource;
import org.megatronj.io.gpt.Split;
import org.megatronj.io.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Option;

/**
 * {@code megatron data sample}: one GPT sample as training sees it — after the split, the epochs and
 * the shuffle — decoded to text, with its token ids, loss mask and position ids on request.
 */
@Command(name = "sample", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Show GPT sample I of a split as the trainer would get it (indices are built or loaded from the cache first).",
                "Prints where it comes from and its decoded text; --ids adds tokens, labels, loss mask and position ids."})
final class DataSampleCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    GptDataOptions data;

    @Mixin
    TokenizerOptions tokenizer;

    @Option(names = "--index", required = true, paramLabel = "I", description = "Sample number in serving order (0-based).")
    long index;

    @Option(names = "--split-name", paramLabel = "SPLIT", defaultValue = "train",
            description = "Which split: train, valid or test. Default: ${DEFAULT-VALUE}.")
    String splitName;

    @Option(names = "--train-samples", paramLabel = "N", description = "Training samples the run asks for (changes epochs and shuffle). Default: one epoch.")
    Long trainSamples;

    @Option(names = "--valid-samples", paramLabel = "N", description = "Validation samples the run asks for. Default: one epoch.")
    Long validSamples;

    @Option(names = "--test-samples", paramLabel = "N", description = "Test samples the run asks for. Default: one epoch.")
    Long testSamples;

    @Option(names = "--ids", description = "Also print token ids, labels, loss mask and position ids.")
    boolean ids;

    @Override
    public Integer call() throws Exception {
        Split split = parseSplit(splitName);
        Tokenizer tok = tokenizer.build();
        data.warnAboutDefaults(spec.commandLine().getErr());
        PrintStream out = System.out;
        try (GptDataSplits splits = GptDatasetFactory.build(data.sources(() -> tok), GptDataOptions.sizes(trainSamples, validSamples, testSamples),
                data.config(tokenizer, tok))) {
            GptSampleSource source = splits.get(split);
            if (source == null) {
                throw new IllegalArgumentException("the " + split.megatronName() + " split has no data with these flags");
            }
            if (index < 0 || index >= source.size()) {
                throw new IllegalArgumentException("--index " + index + " is outside the " + split.megatronName() + " split's "
                        + source.size() + " samples (0.." + (source.size() - 1) + ")");
            }
            GptSample sample = source.sample(index);
            out.printf("sample %d of %d (%s split): %s%n", index, source.size(), split.megatronName(), source.origin(index));
            out.println("--- text (" + sample.text().length + " tokens: " + sample.tokens().length + " inputs + "
                    + (sample.text().length - sample.tokens().length) + " extra label token) ---");
            out.println(tok.detokenize(withoutPadding(sample.text())));
            out.println("---");
            if (ids) {
                out.println("tokens:       " + Arrays.toString(sample.tokens()));
                out.println("labels:       " + Arrays.toString(sample.labels()));
                out.println("loss mask:    " + Arrays.toString(sample.lossMask()));
                out.println("position ids: " + Arrays.toString(sample.positionIds()));
                if (sample.attentionSegments() != null) {
                    out.println("attention segments (attend only within one): " + Arrays.toString(sample.attentionSegments()));
                }
            }
        }
        return 0;
    }

    private static int[] withoutPadding(int[] text) {
        int n = text.length;
        while (n > 0 && text[n - 1] < 0) {
            n--;
        }
        return Arrays.copyOf(text, n);
    }

    static Split parseSplit(String name) {
        for (Split s : Split.values()) {
            if (s.megatronName().equalsIgnoreCase(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("--split-name '" + name + "': expected train, valid or test");
    }
}
