package org.megatronj.parallel;

import java.util.ArrayList;
import java.util.List;

/**
 * Megatron's rank layout: a rank is a point of the grid {@code tp x dp x pp}, with the
 * dimensions in the order "tp-cp-ep-dp-pp" (context and expert parallelism are 1 here), the
 * first varying fastest:
 * <pre>
 *   rank = tp + TP * (dp + DP * pp)
 * </pre>
 * so tensor-parallel ranks are adjacent (one node's NVLink domain) and pipeline stages are the
 * farthest apart. A group of kind "dp" holds the ranks that differ only in their dp coordinate;
 * "tp-pp" (the model-parallel group) those that differ in tp and pp. Groups are listed in
 * Megatron's order: by the coordinates outside the group, the first dimension fastest.
 */
final class RankGenerator {
    /** Dimension names in layout order. */
    static final List<String> ORDER = List.of("tp", "dp", "pp");

    private final int[] sizes;
    private final int worldSize;

    RankGenerator(int tp, int dp, int pp) {
        this.sizes = new int[] {tp, dp, pp};
        this.worldSize = tp * dp * pp;
    }

    int worldSize() {
        return worldSize;
    }

    /** The global rank at grid point (tp, dp, pp). */
    int rank(int tp, int dp, int pp) {
        return tp + sizes[0] * (dp + sizes[1] * pp);
    }

    /** The (tp, dp, pp) coordinates of a global rank. */
    int[] coordinates(int rank) {
        int tp = rank % sizes[0];
        int dp = (rank / sizes[0]) % sizes[1];
        int pp = rank / (sizes[0] * sizes[1]);
        return new int[] {tp, dp, pp};
    }

    /**
     * All groups of a kind such as "tp", "dp", "pp" or "tp-pp" (dimension names joined by '-',
     * in any order). Each group lists its ranks in increasing order of its own coordinates.
     */
    List<int[]> groups(String kind) {
        boolean[] masked = parseMask(kind);
        int[] stride = new int[3];
        int s = 1;
        for (int d = 0; d < 3; d++) {
            stride[d] = s;
            s *= sizes[d];
        }
        int groupSize = 1;
        for (int d = 0; d < 3; d++) {
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
                for (int d = 0; d < 3; d++) {
                    rank += (masked[d] ? inside[d] : outside[d]) * stride[d];
                }
                ranks[i] = rank;
            }
            groups.add(ranks);
        }
        return groups;
    }

    /** Spreads {@code index} over the dimensions selected by ({@code masked == wantMasked}), first dimension fastest. */
    private int[] decompose(int index, boolean[] masked, boolean wantMasked) {
        int[] coordinates = new int[3];
        for (int d = 0; d < 3; d++) {
            if (masked[d] == wantMasked) {
                coordinates[d] = index % sizes[d];
                index /= sizes[d];
            }
        }
        return coordinates;
    }

    private static boolean[] parseMask(String kind) {
        boolean[] masked = new boolean[3];
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
        return "RankGenerator[tp=" + sizes[0] + ", dp=" + sizes[1] + ", pp=" + sizes[2] + "]";
    }
}
