package org.megatronj.io.indexed;

/**
 * Element types of a {@code .bin} file and their dtype codes in the {@code .idx} header
 * (Megatron's {@code DType} enum). Code 7 means float32 in current Megatron
 * ({@code megatron/core/datasets}) but float64 ({@code np.double}) in the legacy
 * {@code megatron/data} code; {@link #fromCode(int, boolean)} picks the meaning.
 */
public enum IndexedDtype {
    UINT8(1, 1),
    INT8(2, 1),
    INT16(3, 2),
    INT32(4, 4),
    INT64(5, 8),
    FLOAT64(6, 8),
    FLOAT32(7, 4),
    UINT16(8, 2);

    /** Megatron's {@code optimal_dtype}: uint16 holds every id of a vocabulary below this size, with a safety margin. */
    private static final int UINT16_VOCAB_LIMIT = 65500;

    private final int code;
    private final int byteSize;

    IndexedDtype(int code, int byteSize) {
        this.code = code;
        this.byteSize = byteSize;
    }

    /** The dtype code written into the {@code .idx} header. */
    public int code() {
        return code;
    }

    /** Bytes per element in the {@code .bin} file. */
    public int byteSize() {
        return byteSize;
    }

    /**
     * The dtype for a header code.
     *
     * @param legacy read code 7 as legacy Megatron did (float64, 8 bytes) instead of float32
     * @throws DatasetFormatException for codes outside 1..8
     */
    public static IndexedDtype fromCode(int code, boolean legacy) {
        if (legacy && code == 7) {
            return FLOAT64;
        }
        for (IndexedDtype d : values()) {
            if (d.code == code) {
                return d;
            }
        }
        throw new DatasetFormatException("unknown dtype code " + code
                + ": expected 1 (uint8), 2 (int8), 3 (int16), 4 (int32), 5 (int64), 6 (float64), 7 (float32) or 8 (uint16)");
    }

    /** The dtype Megatron's preprocessing picks for token ids: uint16 below 65500 entries, else int32. */
    public static IndexedDtype forVocabSize(int vocabSize) {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("vocabulary size must be positive, got " + vocabSize);
        }
        return vocabSize < UINT16_VOCAB_LIMIT ? UINT16 : INT32;
    }

    /** Whether a token id fits this dtype (the builder checks every id it writes). */
    public boolean holds(long value) {
        return switch (this) {
            case UINT8 -> value >= 0 && value <= 0xFF;
            case INT8 -> value >= Byte.MIN_VALUE && value <= Byte.MAX_VALUE;
            case INT16 -> value >= Short.MIN_VALUE && value <= Short.MAX_VALUE;
            case UINT16 -> value >= 0 && value <= 0xFFFF;
            case INT32 -> value >= Integer.MIN_VALUE && value <= Integer.MAX_VALUE;
            case INT64, FLOAT64 -> true;
            case FLOAT32 -> Math.abs(value) <= (1L << 24);
        };
    }

    /** The name NumPy gives this type. */
    public String numpyName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
