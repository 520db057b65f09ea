package org.megatronj.io.gpt;

/**
 * Megatron's {@code helpers.cpp build_blending_indices}: for each blended sample pick the dataset
 * furthest behind its share — the largest {@code weight[d] * max(i, 1) - taken[d]}, the first on
 * ties — and take that dataset's next sample.
 *
 * @param datasetIndex int16 {@code [size]}: which dataset serves blended sample {@code i}
 * @param datasetSampleIndex int64 {@code [size]}: which sample of that dataset
 */
public record BlendingIndices(short[] datasetIndex, long[] datasetSampleIndex) {

    public static BlendingIndices build(double[] weights, int size) {
        if (weights.length == 0 || weights.length >= Short.MAX_VALUE) {
            throw new IllegalArgumentException("a blend needs 1 to 32766 datasets, got " + weights.length);
        }
        short[] datasetIndex = new short[size];
        long[] datasetSampleIndex = new long[size];
        long[] taken = new long[weights.length];
        for (int i = 0; i < size; i++) {
            double position = Math.max((double) i, 1.0);
            int best = 0;
            double bestError = weights[0] * position - (double) taken[0];
            for (int d = 1; d < weights.length; d++) {
                double error = weights[d] * position - (double) taken[d];
                if (error > bestError) {
                    bestError = error;
                    best = d;
                }
            }
            datasetIndex[i] = (short) best;
            datasetSampleIndex[i] = taken[best]++;
        }
        return new BlendingIndices(datasetIndex, datasetSampleIndex);
    }

    /** How many samples each of {@code datasets} datasets serves. */
    public long[] countsPerDataset(int datasets) {
        long[] counts = new long[datasets];
        for (short d : datasetIndex) {
            counts[d]++;
        }
        return counts;
    }
}
