package org.megatronj.parallel;

import java.util.ArrayList;
import java.util.List;

/**
 * Megatron's rank layout: a rank is a point of the grid {@code tp x cp x dp x pp}, with the
 * dimensions in the order "tp-cp-ep-dp-pp" (expert parallelism is 1 here), or "tp-cp-ep-pp-dp" with
 * {@code --use-tp-pp-dp-mapping}, the first varying fastest; by default:
 * <pre>
 *   rank = tp + TP * (cp + CP * (dp + DP * pp))
 * </pre>
 * so tensor-parallel ranks are adjacent (one node's NVLink domain), context-parallel ranks next,
 * and pipeline stages are the farthest apart; with CP = 1 the layout is the one without context
 * parallelism. A group of kind "dp" holds the ranks that differ only in their dp coordinate;
 * "cp-dp" (Megatron's data-parallel group with context parallelism) those that differ in cp and
 * dp; "tp-pp" (the model-parallel group) those that differ in tp and pp. Groups are listed in
 * Megatron's order: by the coordinates outside the group, the first dimension fastest.
 */
final class RankGenerator {
    /** Dimension names in layout order. */
    static final List<String> ORDER = List.of("tp", "cp", "dp", "pp");
    static final int TP = 0;
    static final int CP = 1;
    static final int DP = 2;
    static final int PP = 3;

    private final int[] sizes;
    private final int[] layout;     // the dimensions from the fastest varying to the slowest
    private final int[] stride;     // per dimension
    private final int worldSize;

    /** Without context parallelism (CP = 1). */
    RankGenerator(int tp, int dp, int pp) {
        this(tp, 1, dp, pp);
    }

    RankGenerator(int tp, int cp, int dp, int pp) {
        this(tp, cp, dp, pp, false);
    }

    /** {@code tpPpDpMapping}: pipeline before data parallelism in the layout ({@code --use-tp-pp-dp-mapping}). */
    RankGenerator(int tp, int cp, int dp, int pp, boolean tpPpDpMapping) {
        this.sizes = new int[] {tp, cp, dp, pp};
        this.layout = tpPpDpMapping ? new int[] {TP, CP, PP, DP} : new int[] {TP, CP, DP, PP};
        this.stride = new int[sizes.length];
        int s = 1;
        for (int d : layout) {
            stride[d] = s;
            s *= sizes[d];
        }
        this.worldSize = tp * cp * dp * pp;
    }

    int worldSize() {
        return worldSize;
    }

    /** The global rank at grid point (tp, cp, dp, pp). */
    int rank(int tp, int cp, int dp, int pp) {
        return tp * stride[TP] + cp * stride[CP] + dp * stride[DP] + pp * stride[PP];
    }

    /** The (tp, cp, dp, pp) coordinates of a global rank, indexed by {@link #TP}, {@link #CP}, {@link #DP}, {@link #PP}. */
    int[] coordinates(int rank) {
        int[] c = new int[sizes.length];
        for (int d : layout) {
            c[d] = rank % sizes[d];
            rank /= sizes[d];
        }
        return c;
    }

    /**
     * All groups of a kind such as "tp", "dp", "pp" or "tp-pp" (dimension names joined by '-',
     * in any order). Each group lists its ranks in increasing order of its own coordinates.
     */
    List<int[]> groups(String kind) {
        boolean[] masked = parseMask(kind);
        int groupSize = 1;
        for (int d = 0; d < sizes.length; d++) {
            if (masked[d]) {
                groupSize *= sizes[d];
            }
        }
        List<int[]> groups = new ArrayList<>();
        int groupCount = worldSize / groupSize;
        for (int g = 0; g < groupCount; g++) {
            int[] outside = decompose(g, masked, false);
            int[] ranks = new int[groupSize];
            for (int i = 0; i < groupSize; i++) {
                int[] inside = decompose(i, masked, true);
                int rank = 0;
                for (int d = 0; d < sizes.length; d++) {
                    rank += (masked[d] ? inside[d] : outside[d]) * stride[d];
                }
                ranks[i] = rank;
            }
            groups.add(ranks);
        }
        return groups;
    }

    /** Spreads {@code index} over the dimensions selected by ({@code masked == wantMasked}), in layout order. */
    private int[] decompose(int index, boolean[] masked, boolean wantMasked) {
        int[] coordinates = new int[sizes.length];
        for (int d : layout) {
            if (masked[d] == wantMasked) {
                coordinates[d] = index % sizes[d];
                index /= sizes[d];
            }
        }
        return coordinates;
    }

    private static boolean[] parseMask(String kind) {
        boolean[] masked = new boolean[ORDER.size()];
        for (String name : kind.split("-")) {
            int d = ORDER.indexOf(name);
            if (d < 0) {
                throw new IllegalArgumentException("unknown parallel dimension '" + name + "' in group kind '" + kind
                        + "': expected names from " + ORDER);
            }
            masked[d] = true;
        }
        return masked;
    }

    @Override
    public String toString() {
        return "RankGenerator[tp=" + sizes[TP] + ", cp=" + sizes[CP] + ", dp=" + sizes[DP] + ", pp=" + sizes[PP] + "]";
    }
}
