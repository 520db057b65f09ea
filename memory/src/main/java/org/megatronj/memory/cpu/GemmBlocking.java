package org.megatronj.memory.cpu;

/**
 * Cache-blocking sizes of the gemm, in elements: a packed A block is {@code mc x kc} (meant to
 * stay in L2), a packed B block {@code kc x nc} (L2/L3), and one micro-panel of B
 * ({@code kc x nr}) is reused from L1 across the A micro-panels of a block. The defaults suit a
 * Zen 4 core (64 KiB L1d, 1 MiB L2); {@code -Dmegatron.gemm.blocking=mc,kc,nc} overrides them.
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
            return new GemmBlocking(144, 256, 1536);
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
