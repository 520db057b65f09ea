package org.megatronj.cli.serve;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The n best finished hypotheses of a beam search, as Megatron's {@code BeamHypotheses} (from
 * Hugging Face): a hypothesis scores {@code sum(logprob) / length^lengthPenalty}; once n are kept a new
 * one enters only by beating the worst, which then leaves.
 */
final class BeamHypotheses {
    record Hypothesis(double score, int[] tokens) {
    }

    private final int numBeams;
    private final double lengthPenalty;
    private final List<Hypothesis> beams = new ArrayList<>();
    private double worstScore = 1e9;   // Megatron's starting value

    BeamHypotheses(int numBeams, double lengthPenalty) {
        this.numBeams = numBeams;
        this.lengthPenalty = lengthPenalty;
    }

    int size() {
        return beams.size();
    }

    void add(int[] tokens, double sumLogprobs, int length) {
        double score = sumLogprobs / Math.pow(length, lengthPenalty);
        if (beams.size() < numBeams || score > worstScore) {
            beams.add(new Hypothesis(score, tokens.clone()));
            if (beams.size() > numBeams) {
                List<Hypothesis> sorted = new ArrayList<>(beams);
                sorted.sort(Comparator.comparingDouble(Hypothesis::score));
                beams.remove(sorted.get(0));
                worstScore = sorted.get(1).score();
            } else {
                worstScore = Math.min(score, worstScore);
            }
        }
    }

    /** Whether no open beam can beat the worst kept hypothesis any more (no early stopping, as Megatron). */
    boolean isDone(double bestSumLogprobs, int length) {
        if (beams.size() < numBeams) {
            return false;
        }
        return worstScore >= bestSumLogprobs / Math.pow(length, lengthPenalty);
    }

    /** The hypotheses, best first. */
    List<Hypothesis> best() {
        List<Hypothesis> sorted = new ArrayList<>(beams);
        sorted.sort(Comparator.comparingDouble(Hypothesis::score).reversed());
        return sorted;
    }
}
