package org.megatronj.model;

import java.util.Locale;

/** How token positions enter the model ({@code --position-embedding-type}). */
public enum PositionEmbeddingType {
    /** A learned table {@code [maxPositionEmbeddings, h]} added to the word embeddings (GPT-2). */
    LEARNED_ABSOLUTE("learned_absolute"),
    /** Rotary embeddings applied to queries and keys inside attention (Llama). */
    ROPE("rope"),
    /** No position information (NoPE): causal attention alone orders the tokens. */
    NONE("none");

    private final String flagValue;

    PositionEmbeddingType(String flagValue) {
        this.flagValue = flagValue;
    }

    /** The value as Megatron's flag spells it. */
    public String flagValue() {
        return flagValue;
    }

    public static PositionEmbeddingType parse(String value) {
        for (PositionEmbeddingType t : values()) {
            if (t.flagValue.equals(value.trim().toLowerCase(Locale.ROOT))) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown --position-embedding-type '" + value
                + "': expected learned_absolute, rope or none");
    }
}
