package org.megatronj.cli.serve;

import org.megatronj.model.GPTModel;
import org.megatronj.model.TransformerConfig;
import org.megatronj.model.generate.IncrementalDecoder;
import org.megatronj.model.generate.KvCache;
import org.megatronj.model.generate.Sampler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Megatron's {@code beam_search_and_return_on_first_stage} over a KV cache: one prompt, {@code beamWidth}
 * beams. Each step extends every beam by every token, keeps the 2·width best candidates by summed
 * log-probability (only beam 0 at the first step, as all beams are equal), retires those ending in the
 * stop token into {@link BeamHypotheses}, and continues with the width best others; the cache is
 * reordered to follow the surviving beams. Hypotheses are Megatron's whole token rows: prompt, generated
 * tokens and the end-of-document padding up to prompt + tokens_to_generate.
 */
final class BeamSearch {
    private final GPTModel model;
    private final TransformerConfig config;
    private final SpecialTokens special;

    BeamSearch(GPTModel model, SpecialTokens special) {
        this.model = model;
        this.config = model.config();
        this.special = special;
    }

    private record Candidate(double score, int beam, int token) {
    }

    GenerationOutput search(GenerationJob job) {
        GenerationRequest r = job.request();
        int width = r.beamWidth();
        int stopToken = r.stopToken() == null ? special.eod() : r.stopToken();
        int[] prompt = job.prompts()[0];
        int promptLength = prompt.length;
        int finalLength = Math.min(job.sequenceLength(), config.maxPositionEmbeddings());
        if (promptLength >= finalLength) {
            throw new BadRequestException("context length + tokens_to_generate too large");
        }
        int vocab = config.paddedVocabSize();
        int[][] tokens = new int[width][job.sequenceLength()];
        for (int[] row : tokens) {
            Arrays.fill(row, special.eod());
            System.arraycopy(prompt, 0, row, 0, promptLength);
        }
        double[] scores = new double[width];
        BeamHypotheses hypotheses = new BeamHypotheses(width, r.lengthPenalty());
        boolean done = false;
        int c = promptLength;
        try (KvCache cache = new KvCache(model.backend(), config, finalLength, width, model.precision().computeDtype());
             IncrementalDecoder decoder = new IncrementalDecoder(model, cache,
                     Math.min(promptLength, GenerationEngine.PREFILL_CHUNK))) {
            float[] logits = null;
            for (int start = 0; start < promptLength; start += decoder.maxChunk()) {
                int t = Math.min(decoder.maxChunk(), promptLength - start);
                int[] chunk = new int[t * width];
                for (int p = 0; p < t; p++) {
                    Arrays.fill(chunk, p * width, (p + 1) * width, prompt[start + p]);
                }
                logits = decoder.forward(chunk, t, start, false);
            }
            for (c = promptLength; c < finalLength; c++) {
                List<Candidate> best = topCandidates(logits, tokens, scores, c, c == promptLength ? 1 : width,
                        2 * width, r.preventNewlineAfterColon(), vocab);
                List<Candidate> next = new ArrayList<>();
                for (int rank = 0; rank < best.size() && next.size() < width; rank++) {
                    Candidate cand = best.get(rank);
                    if (cand.token() == stopToken) {
                        if (rank < width) {   // a stop outside the top `width` candidates is dropped
                            hypotheses.add(tokens[cand.beam()], cand.score(), c + 1 - promptLength);
                        }
                    } else {
                        next.add(cand);
                    }
                }
                if (next.isEmpty()) {   // a vocabulary smaller than the beam: every candidate stopped
                    done = true;
                    break;
                }
                if (hypotheses.isDone(best.get(0).score(), c + 1 - promptLength)) {
                    done = true;
                }
                int[] sources = new int[width];
                int[][] nextTokens = new int[width][];
                for (int i = 0; i < width; i++) {
                    Candidate cand = next.get(Math.min(i, next.size() - 1));
                    sources[i] = cand.beam();
                    nextTokens[i] = tokens[cand.beam()].clone();
                    nextTokens[i][c] = cand.token();
                    scores[i] = cand.score();
                }
                tokens = nextTokens;
                if (done || c + 1 == finalLength) {
                    break;
                }
                cache.reorder(sources, c);
                int[] feed = new int[width];
                for (int i = 0; i < width; i++) {
                    feed[i] = tokens[i][c];
                }
                logits = decoder.forward(feed, 1, c, false);
            }
        }
        if (!done) {
            for (int i = 0; i < width; i++) {
                hypotheses.add(tokens[i], scores[i], c + 1 - promptLength);
            }
        }
        List<BeamHypotheses.Hypothesis> ranked = hypotheses.best();
        int n = Math.min(width, ranked.size());
        int[][] outTokens = new int[n][];
        double[] outScores = new double[n];
        for (int i = 0; i < n; i++) {
            outTokens[i] = ranked.get(i).tokens();
            outScores[i] = ranked.get(i).score();
        }
        return new GenerationOutput(outTokens, null, outScores);
    }

    /** The {@code keep} best (beam, token) extensions by summed log-probability, best first. */
    private List<Candidate> topCandidates(float[] logits, int[][] tokens, double[] scores, int c, int beams, int keep,
                                          boolean preventNewlineAfterColon, int vocab) {
        PriorityQueue<Candidate> heap = new PriorityQueue<>(keep + 1, (a, b) -> Double.compare(a.score(), b.score()));
        for (int beam = 0; beam < beams; beam++) {
            int offset = beam * vocab;
            if (preventNewlineAfterColon && special.colon() >= 0 && special.newline() >= 0
                    && tokens[beam][c - 1] == special.colon()) {
                logits[offset + special.newline()] = -1e10f;
            }
            double lse = Sampler.logSumExp(logits, offset, vocab);
            for (int v = 0; v < config.vocabSize(); v++) {
                double score = logits[offset + v] - lse + scores[beam];
                if (heap.size() < keep) {
                    heap.add(new Candidate(score, beam, v));
                } else if (score > heap.peek().score()) {
                    heap.poll();
                    heap.add(new Candidate(score, beam, v));
                }
            }
        }
        List<Candidate> best = new ArrayList<>(heap);
        best.sort((a, b) -> Double.compare(b.score(), a.score()));
        return best;
    }
}
