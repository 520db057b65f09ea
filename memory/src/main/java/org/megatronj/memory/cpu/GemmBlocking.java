package org.megatronj.memory.cpu;

/**
 * Cache-blocking sizes of the gemm, in elements: a packed A block is {@code mc x kc}, a packed B
 * block {@code kc x nc}; {@code kc} is an upper bound (the driver cuts k into equal blocks). On a
 * Zen 4 core (32 KiB L1d, 1 MiB L2) the defaults keep one A micro-panel ({@code mr x kc}, 24 KiB)
 * in L1 and one B micro-panel ({@code kc x nr}, 192 KiB) in L2 while the A micro-panels pass
 * under it; the kernel runs at its L1 speed with B streaming from L2 (measured), so a long
 * {@code kc} pays more by touching C fewer times (1024 vs 256: 5-15% faster at GPT shapes on 2
 * threads). {@code -Dmegatron.gemm.blocking=mc,kc,nc} overrides them.
 */
record GemmBlocking(int mc, int kc, int nc) {
    static final String PROPERTY = "megatron.gemm.blocking";
    static final GemmBlocking DEFAULT = fromProperty(System.getProperty(PROPERTY));

    GemmBlocking {
        if (mc < 1 || kc < 1 || nc < 1) {
            throw new IllegalArgumentException("gemm blocking sizes must be positive: mc=" + mc + ", kc=" + kc + ", nc=" + nc);
        }
    }

    static GemmBlocking fromProperty(String value) {
        if (value == null || value.isBlank()) {
            return new GemmBlocking(144, 1024, 1536);
        }
        String[] parts = value.trim().split(",");
        try {
            if (parts.length == 3) {
                return new GemmBlocking(Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim()),
                        Integer.parseInt(parts[2].trim()));
            }
        } catch (NumberFormatException e) {
            // fall through to the message below
        }
        throw new IllegalArgumentException(PROPERTY + "='" + value + "': expected three positive integers mc,kc,nc");
    }
}
