package org.megatronj.model;


/** How token positions enter the model ({@code --position-embedding-type}). */
public enum PositionEmbeddingType implements FlagValue {
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
    @Override
    public String flagValue() {
        return flagValue;
    }

    public static PositionEmbeddingType parse(String value) {
        return FlagValue.parse(PositionEmbeddingType.class, "--position-embedding-type", value);
    }
}
