package org.megatronj.io.npy;

/**
 * The element types Megatron-J reads and writes in {@code .npy} files, with NumPy's {@code descr}
 * strings. Multi-byte types are little-endian ({@code <}), single bytes have no order ({@code |}).
 */
public enum NpyDtype {
    INT8("|i1", 1),
    UINT8("|u1", 1),
    INT16("<i2", 2),
    UINT16("<u2", 2),
    INT32("<i4", 4),
    UINT32("<u4", 4),
    INT64("<i8", 8),
    UINT64("<u8", 8),
    FLOAT32("<f4", 4),
    FLOAT64("<f8", 8);

    private final String descr;
    private final int byteSize;

    NpyDtype(String descr, int byteSize) {
        this.descr = descr;
        this.byteSize = byteSize;
    }

    /** NumPy's type string, e.g. {@code <i4}. */
    public String descr() {
        return descr;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloatingPoint() {
        return this == FLOAT32 || this == FLOAT64;
    }

    /**
     * The dtype for a {@code descr} string. Accepts NumPy's other spellings of the same little-endian
     * type ({@code i4}, {@code =i4}, {@code <i1}, {@code |u1}); rejects big-endian and unknown types.
     */
    public static NpyDtype fromDescr(String descr) {
        String body = descr;
        if (!body.isEmpty() && "<|=>".indexOf(body.charAt(0)) >= 0) {
            body = body.substring(1);
        }
        for (NpyDtype d : values()) {
            if (d.descr.substring(1).equals(body)) {
                if (descr.startsWith(">") && d.byteSize > 1) {
                    throw new IllegalArgumentException("big-endian dtype '" + descr + "' is not supported; expected little-endian");
                }
                return d;
            }
        }
        throw new IllegalArgumentException("unsupported .npy dtype '" + descr
                + "'; supported: i1 u1 i2 u2 i4 u4 i8 u8 f4 f8 (little-endian)");
    }
}
