package org.megatronj.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.concurrent.Callable;

import org.megatronj.io.gpt.BlendedDataset;
import org.megatronj.io.gpt.GptDataSplits;
import org.megatronj.io.gpt.GptDataset;
import org.megatronj.io.gpt.GptDatasetFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Option;

/**
 * {@code megatron data build-indices}: builds (or finds) every split's document, sample and shuffle
 * indices under Megatron's cache file names, so a large run's indices exist before it starts and
 * can be compared with Megatron's own.
 */
@Command(name = "build-indices", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Build the GPT document/sample/shuffle indices of each split into the cache folder.",
                "Files are named as Megatron-LM names them (<md5>-GPTDataset-<split>-{document,sample,shuffle}_index.npy",
                "+ -description.txt), so Megatron-LM reuses them, and so does Megatron-J; their paths are printed."})
final class DataBuildIndicesCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    GptDataOptions data;

    @Mixin
    TokenizerOptions tokenizer;

    @Option(names = "--train-samples", paramLabel = "N", description = "Training samples (Megatron: --train-samples, or train-iters x global-batch-size).")
    Long trainSamples;

    @Option(names = "--valid-samples", paramLabel = "N", description = "Validation samples (Megatron: eval points x eval-iters x global-batch-size).")
    Long validSamples;

    @Option(names = "--test-samples", paramLabel = "N", description = "Test samples (Megatron: eval-iters x global-batch-size).")
    Long testSamples;

    @Override
    public Integer call() throws Exception {
        PrintStream out = System.out;
        GptDatasetFactory.Sources sources = data.sources(tokenizer::build);
        data.warnAboutDefaults(spec.commandLine().getErr());
        long start = System.nanoTime();
        // The EOD id only shapes samples, not indices: no need to load the vocabulary here.
        try (GptDataSplits splits = GptDatasetFactory.build(sources, GptDataOptions.sizes(trainSamples, validSamples, testSamples),
                data.indicesConfig(tokenizer))) {
            for (GptDataset d : splits.gptDatasets()) {
                Object requested = d.description().identifiers().get("num_samples");
                out.printf("%s %s: %s, %d samples, %s%n", d.datasetPath() == null ? "mock data" : d.datasetPath(), d.split().megatronName(),
                        requested == null ? "one epoch" : requested + " requested", d.size(),
                        d.loadedFromCache() ? "found in the cache" : "built");
                if (d.cache() == null) {
                    out.println("  (not cached: give --data-cache-path to cache mock data's indices, as Megatron does)");
                } else {
                    for (Path p : d.cache().files("document_index.npy", "sample_index.npy", "shuffle_index.npy")) {
                        out.println("  " + p);
                    }
                }
            }
            for (BlendedDataset b : splits.blendedDatasets()) {
                out.printf("blend %s: %d samples from %d datasets%n", b.description().identifiers().get("split"), b.size(), b.datasets().size());
                if (b.cache() == null) {
                    out.println("  (not cached: give --data-cache-path to cache blends, as Megatron does)");
                } else {
                    for (Path p : b.cache().files("dataset_index.npy", "dataset_sample_index.npy")) {
                        out.println("  " + p);
                    }
                }
            }
        }
        System.err.printf("built indices in %.2f s%n", (System.nanoTime() - start) / 1e9);
        return 0;
    }
}
