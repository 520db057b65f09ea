package org.megatronj.memory.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The float vector species the CPU kernels use. The system property {@code megatron.vector.bits}
 * picks it: 0 forces the scalar path (every kernel must have one, so it is testable on any CPU),
 * 128/256/512 force a width, unset means the widest the CPU supports.
 *
 * <p>Read once per JVM: the JIT folds the species into constants. Tests that compare both
 * paths pass explicit species to the kernels instead of changing the property.
 */
public final class VectorWidth {
    public static final String PROPERTY = "megatron.vector.bits";

    private static final int BITS = resolveBits(System.getProperty(PROPERTY));

    private VectorWidth() {
    }

    /** Vector width in bits, 0 for the scalar path. */
    public static int bits() {
        return BITS;
    }

    public static boolean scalar() {
        return BITS == 0;
    }

    /** The species in use; null when the scalar path is forced. */
    public static VectorSpecies<Float> floatSpecies() {
        return BITS == 0 ? null : speciesOf(BITS);
    }

    public static VectorSpecies<Float> speciesOf(int bits) {
        return switch (bits) {
            case 64 -> FloatVector.SPECIES_64;
            case 128 -> FloatVector.SPECIES_128;
            case 256 -> FloatVector.SPECIES_256;
            case 512 -> FloatVector.SPECIES_512;
            default -> throw new IllegalArgumentException(PROPERTY + "=" + bits + ": expected 0, 64, 128, 256 or 512");
        };
    }

    static int resolveBits(String property) {
        int preferred = FloatVector.SPECIES_PREFERRED.vectorBitSize();
        if (property == null || property.isBlank()) {
            return preferred;
        }
        int bits;
        try {
            bits = Integer.parseInt(property.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(PROPERTY + "='" + property + "': expected 0, 128, 256 or 512");
        }
        if (bits == 0) {
            return 0;
        }
        VectorShape.forBitSize(bits); // validates
        if (bits > preferred) {
            throw new IllegalArgumentException(PROPERTY + "=" + bits + ": this CPU supports at most " + preferred + "-bit vectors");
        }
        return bits;
    }

    /** A name for logs and {@code megatron info}: "AVX-512 (16 x fp32)", "scalar", ... */
    public static String describe() {
        if (BITS == 0) {
            return "scalar (forced by -D" + PROPERTY + "=0)";
        }
        String isa = switch (BITS) {
            case 512 -> "AVX-512";
            case 256 -> "AVX2";
            case 128 -> "SSE/NEON";
            default -> BITS + "-bit";
        };
        return isa + " (" + BITS + "-bit, " + (BITS / 32) + " x fp32 lanes)";
    }
}
