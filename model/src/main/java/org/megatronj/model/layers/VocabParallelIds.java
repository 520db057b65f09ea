package org.megatronj.model.layers;

import org.megatronj.memory.Backend;
import org.megatronj.memory.Tensor;

/**
 * The ids one tensor-parallel rank looks up in its rows {@code [start, end)} of a vocab-parallel
 * table (Megatron's {@code VocabParallelEmbedding} input masking): ids it holds shifted by
 * {@code -start}, others replaced by 0, and the runs of rows whose output must be zeroed,
 * flattened as {@code [from0, to0, from1, to1, ...]}.
 */
public record VocabParallelIds(int[] localIds, int[] maskedRuns) {
    /** No rows masked (a single rank holds the whole vocabulary). */
    public static final int[] NONE_MASKED = new int[0];

    public static VocabParallelIds of(int[] ids, int start, int end) {
        int[] local = new int[ids.length];
        int[] runs = new int[ids.length * 2 + 2];
        int n = 0;
        int runStart = -1;
        for (int i = 0; i < ids.length; i++) {
            boolean mine = ids[i] >= start && ids[i] < end;
            local[i] = mine ? ids[i] - start : 0;
            if (!mine && runStart < 0) {
                runStart = i;
            } else if (mine && runStart >= 0) {
                runs[n++] = runStart;
                runs[n++] = i;
                runStart = -1;
            }
        }
        if (runStart >= 0) {
            runs[n++] = runStart;
            runs[n++] = ids.length;
        }
        return new VocabParallelIds(local, java.util.Arrays.copyOf(runs, n));
    }

    /** Zeroes the rows {@code [from, to)} of each run of {@code x} viewed as {@code [rows, last dim]}. */
    static void zeroRows(Backend backend, Tensor x, int[] runs) {
        if (runs.length == 0) {
            return;
        }
        Tensor rows = x.reshape(-1, x.dim(-1));
        for (int i = 0; i < runs.length; i += 2) {
            backend.fill(rows.view(runs[i], runs[i + 1]), 0f);
        }
    }
}
