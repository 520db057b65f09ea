package org.megatronj.io.gpt;

/** The three dataset splits, in Megatron's order and with its names ({@code Split.train.name}). */
public enum Split {
    TRAIN("train"),
    VALID("valid"),
    TEST("test");

    private final String megatronName;

    Split(String megatronName) {
        this.megatronName = megatronName;
    }

    /** The name Megatron writes into cache file names and descriptions: train, valid, test. */
    public String megatronName() {
        return megatronName;
    }
}
