package org.megatronj.io.gpt;

/** A dataset of GPT samples: one split of a GPT dataset, or a blend of several. */
public interface GptSampleSource {

    /** Number of samples that can be drawn (may exceed the number requested, as in Megatron). */
    long size();

    /** Sample {@code index} in serving order (the shuffle is applied), {@code 0 <= index < size()}. */
    GptSample sample(long index);

    /** The Megatron description this dataset's cache files are named after. */
    CacheDescription description();

    /** Where the sample comes from, for showing it: the dataset path, and the shuffled sample number within it. */
    String origin(long index);
}
