package org.megatronj.memory;

/**
 * Megatron's fused {@code linear_qkv} output {@code [s, b, (np + 2 ng) d]}, each token holding, per
 * query group, the group's {@code np / ng} query heads, its key head and its value head, separated
 * into the attention op's dense q {@code [s, b, np, d]}, k, v {@code [s, b, ng, d]} and merged back
 * (for the gradient). The composed fallback of {@link Backend#attentionForwardFusedQkv}: one copy
 * per (token, group) and tensor, so meant for backends that do not read the fused layout in place
 * (which tell so by {@link Backend#readsFusedQkv}) and for tests.
 */
final class FusedQkv {
    private final Tensor fusedRows;  // [s b ng, (rep + 2) d]
    private final int rep;
    private final int d;

    /** Checks {@code qkv [s, b, (np + 2 ng) d]} for {@code op} and returns its per-group view. */
    FusedQkv(String op, Tensor qkv, int np, int ng) {
        if (qkv.rank() != 3 || ng <= 0 || np <= 0 || np % ng != 0 || qkv.dim(2) % (np + 2L * ng) != 0) {
            throw new TensorException(op + ": qkv " + Tensor.shapeString(qkv.shape()) + " with np = " + np + ", ng = " + ng
                    + "; expected [s, b, (np + 2 ng) d] with np % ng == 0");
        }
        this.rep = np / ng;
        this.d = Math.toIntExact(qkv.dim(2) / (np + 2L * ng));
        this.fusedRows = qkv.reshape(qkv.dim(0) * qkv.dim(1) * ng, (long) (rep + 2) * d);
    }

    int headDim() {
        return d;
    }

    /** q, k and v of the fused tensor into dense ones ({@code [s, b, np, d]}, {@code [s, b, ng, d]} twice). */
    void split(Backend backend, Tensor q, Tensor k, Tensor v) {
        copyHeads(backend, q, k, v, false);
    }

    /** The reverse of {@link #split}: dense dq, dk, dv into this fused tensor. */
    void merge(Backend backend, Tensor dq, Tensor dk, Tensor dv) {
        copyHeads(backend, dq, dk, dv, true);
    }

    /** Row by row, each row's rep query heads, key head and value head, into the fused tensor or out of it. */
    private void copyHeads(Backend backend, Tensor q, Tensor k, Tensor v, boolean intoFused) {
        Tensor qRows = q.reshape(fusedRows.dim(0), (long) rep * d);
        Tensor kRows = k.reshape(fusedRows.dim(0), d);
        Tensor vRows = v.reshape(fusedRows.dim(0), d);
        for (long r = 0; r < fusedRows.dim(0); r++) {
            Tensor heads = fusedRows.select(r).reshape(rep + 2, d);
            Tensor[][] pairs = {{heads.view(0, rep), qRows.select(r).reshape(rep, d)},
                    {heads.select(rep), kRows.select(r)}, {heads.select(rep + 1), vRows.select(r)}};
            for (Tensor[] pair : pairs) {
                backend.copy(pair[intoFused ? 1 : 0], pair[intoFused ? 0 : 1]);
            }
        }
    }
}
