package org.megatronj.io.gpt;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Megatron's {@code --split} string turned into per-split book-ends, as current Megatron-Core does
 * it ({@code parse_and_normalize_split} and {@code convert_split_vector_to_split_matrix}, since
 * core_v0.5.0): take every number in the string, pad to three with zeros, divide by the sum in
 * float64, take running sums from 0, and give split {@code i} the book-end {@code (c[i], c[i+1])},
 * or none when the book-end is empty. A split of {@code N} sequences then gets sequences
 * {@code [round(start*N), round(end*N))} with Python's round-half-to-even.
 *
 * @param split the string as given (kept verbatim: Megatron hashes it), or null with per-split data paths
 * @param starts book-end starts, NaN where a split has none
 * @param ends book-end ends, NaN where a split has none
 */
public record SplitMatrix(String split, double[] starts, double[] ends) {
    private static final Pattern NUMBER = Pattern.compile("[.0-9]+");

    /** Megatron's default when {@code --data-path} is given without {@code --split}: the spaces are part of it. */
    public static final String LEGACY_DEFAULT_SPLIT = "969, 30, 1";

    public SplitMatrix {
        starts = starts.clone();
        ends = ends.clone();
    }

    /** Parses a split string such as {@code 949,50,1} or {@code 99,1}. */
    public static SplitMatrix parse(String split) {
        Matcher m = NUMBER.matcher(split);
        List<Double> numbers = new ArrayList<>();
        while (m.find()) {
            try {
                numbers.add(Double.parseDouble(m.group()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--split '" + split + "': '" + m.group() + "' is not a number");
            }
        }
        if (numbers.size() > Split.values().length) {
            throw new IllegalArgumentException("--split '" + split + "' has " + numbers.size() + " numbers; expected at most 3 (train,valid,test)");
        }
        double[] vector = new double[Split.values().length];
        for (int i = 0; i < numbers.size(); i++) {
            vector[i] = numbers.get(i);
        }
        double sum = Normalize.numpySum(vector);
        if (!(sum > 0)) {
            throw new IllegalArgumentException("--split '" + split + "' has no positive weight; expected e.g. 949,50,1");
        }
        for (int i = 0; i < vector.length; i++) {
            vector[i] /= sum;
        }
        double[] starts = new double[vector.length];
        double[] ends = new double[vector.length];
        double cumulative = 0;
        for (int i = 0; i < vector.length; i++) {
            double next = cumulative + vector[i];
            if (next <= cumulative) {
                starts[i] = Double.NaN;
                ends[i] = Double.NaN;
            } else {
                starts[i] = cumulative;
                ends[i] = next;
            }
            cumulative = next;
        }
        return new SplitMatrix(split, starts, ends);
    }

    /** The matrix Megatron uses for one split of a per-split data path: {@code (0.0, 1.0)} for that split only. */
    public static SplitMatrix wholeDatasetFor(Split only) {
        double[] starts = new double[3];
        double[] ends = new double[3];
        Arrays.fill(starts, Double.NaN);
        Arrays.fill(ends, Double.NaN);
        starts[only.ordinal()] = 0.0;
        ends[only.ordinal()] = 1.0;
        return new SplitMatrix(null, starts, ends);
    }

    public boolean has(Split s) {
        return !Double.isNaN(starts[s.ordinal()]);
    }

    /** {@code [begin, end)} sequence numbers of {@code s} in a dataset of {@code count} sequences; null if the split has no book-end. */
    public int[] range(Split s, int count) {
        if (!has(s)) {
            return null;
        }
        int begin = (int) Math.rint(starts[s.ordinal()] * (double) count);
        int end = (int) Math.rint(ends[s.ordinal()] * (double) count);
        return new int[] {begin, end};
    }

    /**
     * The {@code split_matrix} value Megatron puts in its JSON description: a list of
     * {@code [start, end]} pairs or nulls. The very first start is Python's integer 0 (the running
     * sum starts from {@code [0]}), every other number is a float.
     */
    public List<Object> describe() {
        List<Object> rows = new ArrayList<>();
        for (int i = 0; i < starts.length; i++) {
            if (Double.isNaN(starts[i])) {
                rows.add(null);
            } else {
                Object start = i == 0 ? (Object) 0 : (Object) starts[i];
                rows.add(Arrays.asList(start, ends[i]));
            }
        }
        return rows;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SplitMatrix other && java.util.Objects.equals(split, other.split)
                && Arrays.equals(starts, other.starts) && Arrays.equals(ends, other.ends);
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(split, Arrays.hashCode(starts), Arrays.hashCode(ends));
    }

    @Override
    public String toString() {
        return "SplitMatrix[" + split + " -> " + describe() + "]";
    }
}
