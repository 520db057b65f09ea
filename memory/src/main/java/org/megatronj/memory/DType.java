package org.megatronj.memory;

/**
 * Element types of tensors. The byte size fixes the storage layout; the conversions between
 * F32 and the 16-bit float types live in {@link FloatFormats}.
 */
public enum DType {
    F32(4, true),
    BF16(2, true),
    F16(2, true),
    I32(4, false),
    I64(8, false),
    /** Token ids of vocabularies below 65 536 entries, as Megatron's .bin files store them. */
    U16(2, false),
    U8(1, false);

    private final int byteSize;
    private final boolean floatingPoint;

    DType(int byteSize, boolean floatingPoint) {
        this.byteSize = byteSize;
        this.floatingPoint = floatingPoint;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloatingPoint() {
        return floatingPoint;
    }

    /** Parses a name as users write it: {@code fp32}, {@code float32}, {@code bf16}, {@code fp16}, {@code int32}, ... */
    public static DType parse(String name) {
        return switch (name.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "f32", "fp32", "float32", "float" -> F32;
            case "bf16", "bfloat16" -> BF16;
            case "f16", "fp16", "float16", "half" -> F16;
            case "i32", "int32", "int" -> I32;
            case "i64", "int64", "long" -> I64;
            case "u16", "uint16" -> U16;
            case "u8", "uint8", "byte" -> U8;
            default -> throw new IllegalArgumentException("unknown dtype '" + name
                    + "': expected one of fp32, bf16, fp16, int32, int64, uint16, uint8");
        };
    }
}
