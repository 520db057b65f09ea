package org.megatronj.io.safetensors;

import org.megatronj.memory.DType;

/** The dtype names of the safetensors header and the tensor dtypes they map to. */
final class SafetensorsDType {
    private SafetensorsDType() {
    }

    static String name(DType dtype) {
        return switch (dtype) {
            case F32 -> "F32";
            case BF16 -> "BF16";
            case F16 -> "F16";
            case I32 -> "I32";
            case I64 -> "I64";
            case U16 -> "U16";
            case U8 -> "U8";
        };
    }

    /** The tensor dtype of a header name; {@code where} says which file and tensor, for the error. */
    static DType parse(String name, String where) {
        return switch (name) {
            case "F32" -> DType.F32;
            case "BF16" -> DType.BF16;
            case "F16" -> DType.F16;
            case "I32" -> DType.I32;
            case "I64" -> DType.I64;
            case "U16" -> DType.U16;
            case "U8" -> DType.U8;
            default -> throw new SafetensorsException(where + ": dtype '" + name
                    + "' is not supported (supported: F32, BF16, F16, I32, I64, U16, U8)");
        };
    }
}
