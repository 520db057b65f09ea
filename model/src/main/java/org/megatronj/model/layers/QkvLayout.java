package org.megatronj.model.layers;

/**
 * Megatron-core's fused QKV layout. Each token's {@code linear_qkv} output of width
 * {@code (np + 2 ng) d} holds, for every query group g in turn, the group's
 * {@code np/ng} query heads, then its key head, then its value head:
 * <pre>
 *   [ q(g0,h0) .. q(g0,h_{p-1}) k(g0) v(g0) | q(g1,h0) .. | ... ]     (each block d wide)
 * </pre>
 * so that a tensor-parallel split along the output dim keeps whole groups together.
 *
 * <p>Seen as a table of d-wide head vectors, {@code [n (np + 2ng), d]}, separating it into
 * q {@code [n, np, d]}, k and v {@code [n, ng, d]} (the attention op's layout) is a row gather,
 * and so is the reverse for the gradient. Both run as the backend's embedding lookup with the
 * index lists built here, so they work on any device and in parallel. The lists are token-major:
 * the first t tokens' indices are a prefix of a longer list.
 */
public final class QkvLayout {
    private QkvLayout() {
    }

    /** Row of the fused table holding slot {@code slot} (0..p-1 queries, p key, p+1 value) of group g of token t. */
    private static int fusedRow(int t, int g, int slot, int groups, int perGroup) {
        return (t * groups + g) * (perGroup + 2) + slot;
    }

    /** For each query head vector of q {@code [n, np, d]} in order, its row in the fused table. */
    public static int[] queryRows(int tokens, int heads, int groups) {
        int perGroup = heads / groups;
        int[] rows = new int[Math.multiplyExact(tokens, heads)];
        int i = 0;
        for (int t = 0; t < tokens; t++) {
            for (int g = 0; g < groups; g++) {
                for (int j = 0; j < perGroup; j++) {
                    rows[i++] = fusedRow(t, g, j, groups, perGroup);
                }
            }
        }
        return rows;
    }

    /** For each key (value when {@code value}) head vector of {@code [n, ng, d]}, its row in the fused table. */
    public static int[] keyValueRows(int tokens, int heads, int groups, boolean value) {
        int perGroup = heads / groups;
        int[] rows = new int[Math.multiplyExact(tokens, groups)];
        int i = 0;
        for (int t = 0; t < tokens; t++) {
            for (int g = 0; g < groups; g++) {
                rows[i++] = fusedRow(t, g, value ? perGroup + 1 : perGroup, groups, perGroup);
            }
        }
        return rows;
    }

    /**
     * The inverse gather: for each row of the fused table, its row in the stacked gradient table
     * {@code [dq (n np rows) | dk (n ng rows) | dv (n ng rows)]}.
     */
    public static int[] fusedRowsFromStacked(int tokens, int heads, int groups) {
        int perGroup = heads / groups;
        int qRows = tokens * heads;
        int kvRows = tokens * groups;
        int[] rows = new int[Math.multiplyExact(tokens, heads + 2 * groups)];
        int i = 0;
        for (int t = 0; t < tokens; t++) {
            for (int g = 0; g < groups; g++) {
                for (int j = 0; j < perGroup; j++) {
                    rows[i++] = t * heads + g * perGroup + j;
                }
                rows[i++] = qRows + t * groups + g;
                rows[i++] = qRows + kvRows + t * groups + g;
            }
        }
        return rows;
    }
}
