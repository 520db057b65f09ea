package org.megatronj.io.gpt;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * A {@code --data-path} value: dataset prefixes, optionally with weights — Megatron's
 * {@code get_blend_from_list}. An even number of words where every other word is a number reads as
 * {@code weight prefix weight prefix ...} ({@code 0.3 A 0.7 B}); anything else is a list of prefixes
 * (weights then come from the datasets' sizes).
 *
 * @param prefixes dataset prefixes, stripped, exactly as they go into Megatron's cache description
 * @param weights the raw weights (not normalized), or null
 */
public record DataBlend(List<String> prefixes, double[] weights) {
    private static final Pattern PYTHON_FLOAT = Pattern.compile(
            "[+-]?((\\d[\\d_]*(\\.[\\d_]*)?|\\.\\d[\\d_]*)([eE][+-]?\\d+)?|inf|infinity|nan)", Pattern.CASE_INSENSITIVE);

    public DataBlend {
        prefixes = List.copyOf(prefixes);
        weights = weights == null ? null : weights.clone();
        if (prefixes.isEmpty()) {
            throw new IllegalArgumentException("a data path needs at least one dataset prefix");
        }
        if (weights != null && weights.length != prefixes.size()) {
            throw new IllegalArgumentException(prefixes.size() + " prefixes but " + weights.length + " weights");
        }
        if (weights != null) {
            for (int i = 0; i < weights.length; i++) {
                // A negative share means nothing, and Megatron's BlendedDataset asserts every weight > 0;
                // saying so here names the dataset (later it would be "got NaN" when all weights are 0).
                if (!(weights[i] > 0 && Double.isFinite(weights[i]))) {
                    throw new IllegalArgumentException("data path weight " + weights[i] + " of " + prefixes.get(i)
                            + " must be a finite number > 0" + (weights[i] == 0 ? " (to leave a dataset out, drop it from the list)" : ""));
                }
            }
        }
    }

    /** Parses the words of one {@code --data-path} (or {@code --train-data-path} ...) option. */
    public static DataBlend parse(List<String> words) {
        if (words == null || words.isEmpty()) {
            throw new IllegalArgumentException("empty data path: expected PREFIX... or WEIGHT PREFIX WEIGHT PREFIX...");
        }
        if (words.size() % 2 == 0) {
            int numeric = 0;
            for (int i = 0; i < words.size(); i += 2) {
                if (isPythonFloat(words.get(i))) {
                    numeric++;
                }
            }
            if (numeric == words.size() / 2) {
                List<String> prefixes = new ArrayList<>();
                double[] weights = new double[words.size() / 2];
                for (int i = 0; i < words.size(); i += 2) {
                    weights[i / 2] = parsePythonFloat(words.get(i));
                    prefixes.add(words.get(i + 1).strip());
                }
                return new DataBlend(prefixes, weights);
            }
            if (numeric != 0) {
                throw new IllegalArgumentException("data path " + words + " mixes weights and prefixes: with weights, every prefix needs one "
                        + "(WEIGHT PREFIX WEIGHT PREFIX ...)");
            }
        }
        List<String> prefixes = new ArrayList<>();
        for (String w : words) {
            prefixes.add(w.strip());
        }
        return new DataBlend(prefixes, null);
    }

    static boolean isPythonFloat(String s) {
        return PYTHON_FLOAT.matcher(s.strip()).matches();
    }

    static double parsePythonFloat(String s) {
        String t = s.strip().replace("_", "").toLowerCase(java.util.Locale.ROOT);
        String body = t.startsWith("+") || t.startsWith("-") ? t.substring(1) : t;
        if (body.startsWith("inf")) {
            return t.startsWith("-") ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY;
        }
        if (body.equals("nan")) {
            return Double.NaN;
        }
        return Double.parseDouble(t);
    }

    public boolean isSingleUnweighted() {
        return prefixes.size() == 1 && weights == null;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DataBlend b && prefixes.equals(b.prefixes) && java.util.Arrays.equals(weights, b.weights);
    }

    @Override
    public int hashCode() {
        return prefixes.hashCode() * 31 + java.util.Arrays.hashCode(weights);
    }

    @Override
    public String toString() {
        return "DataBlend" + prefixes + (weights == null ? "" : java.util.Arrays.toString(weights));
    }
}
