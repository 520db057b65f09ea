package org.megatronj.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which decoder layers each model chunk of each pipeline stage holds, in Megatron's order: virtual
 * stage {@code v * stages + s} (chunk v of stage s) holds the next {@code layers[v * stages + s]} layers,
 * the first virtual stage also the embedding and the last the output layer and loss. Megatron's even
 * split, its uneven one ({@code --decoder-first/last-pipeline-num-layers}, {@code
 * --account-for-embedding/loss-in-pipeline-split}) and {@code --pipeline-model-parallel-layout} all
 * come down to these counts; so does a checkpoint's record of its split.
 */
public final class PipelineLayout {
    private final int stages;
    private final int chunksPerStage;
    private final int[] layers;   // [chunksPerStage * stages], virtual-stage order

    private PipelineLayout(int stages, int chunksPerStage, int[] layers) {
        if (stages < 1 || chunksPerStage < 1 || layers.length != stages * chunksPerStage) {
            throw new IllegalArgumentException("a pipeline layout of " + stages + " stages x " + chunksPerStage
                    + " chunks needs " + stages * chunksPerStage + " layer counts, got " + layers.length);
        }
        for (int i = 0; i < layers.length; i++) {
            if (layers[i] < 0) {
                throw new IllegalArgumentException("virtual pipeline stage " + i + " would hold " + layers[i] + " layers");
            }
            if (layers[i] == 0 && i != 0 && i != layers.length - 1) {
                throw new IllegalArgumentException("virtual pipeline stage " + i + " (pipeline rank " + i % stages
                        + ", chunk " + i / stages + ") holds no layers; only the first (embedding) and the last (loss)"
                        + " may be without decoder layers here");
            }
        }
        this.stages = stages;
        this.chunksPerStage = chunksPerStage;
        this.layers = layers.clone();
    }

    /** Counts as recorded (a checkpoint's split), in virtual-stage order. */
    public static PipelineLayout ofCounts(int stages, int chunksPerStage, int[] layers) {
        return new PipelineLayout(stages, chunksPerStage, layers);
    }

    /** Megatron's even split: every virtual stage {@code numLayers / (stages * chunksPerStage)} layers. */
    public static PipelineLayout even(int numLayers, int stages, int chunksPerStage) {
        int pieces = stages * chunksPerStage;
        if (numLayers % pieces != 0) {
            throw new IllegalArgumentException("--num-layers " + numLayers + " is not divisible by "
                    + "--pipeline-model-parallel-size " + stages + " x virtual stages " + chunksPerStage + " = " + pieces);
        }
        int[] counts = new int[pieces];
        Arrays.fill(counts, numLayers / pieces);
        return new PipelineLayout(stages, chunksPerStage, counts);
    }

    /**
     * Megatron's {@code get_num_layers_to_build}: {@code first}/{@code last} layers (null = not set) on the first/last
     * pipeline rank and the rest evenly over the middle ones, or the embedding and loss counted as a layer each
     * ({@code accountForEmbedding}/{@code accountForLoss}), every rank's layers then split evenly over its chunks.
     */
    public static PipelineLayout megatron(int numLayers, int stages, int chunksPerStage, Integer first, Integer last,
                                          boolean accountForEmbedding, boolean accountForLoss) {
        boolean uneven = first != null || last != null;
        if (uneven && (accountForEmbedding || accountForLoss)) {
            throw new IllegalArgumentException("--decoder-first-pipeline-num-layers and --decoder-last-pipeline-num-layers"
                    + " cannot be set at the same time with --account-for-embedding-in-pipeline-split and"
                    + " --account-for-loss-in-pipeline-split");
        }
        int[] perRank = new int[stages];
        if (uneven) {
            int middleLayers = numLayers;
            int middleStages = stages;
            if (first != null) {
                requirePositive("--decoder-first-pipeline-num-layers", first);
                middleLayers -= first;
                middleStages--;
            }
            if (last != null) {
                requirePositive("--decoder-last-pipeline-num-layers", last);
                middleLayers -= last;
                middleStages--;
            }
            if (middleStages < 0 || (middleLayers != 0) != (middleStages > 0) || middleLayers < 0) {
                throw new IllegalArgumentException("Mismatch: " + middleLayers + " middle layers remaining but "
                        + Math.max(middleStages, 0) + " middle PP stages available (--num-layers " + numLayers
                        + ", --pipeline-model-parallel-size " + stages + ")");
            }
            if (middleStages > 0 && middleLayers % middleStages != 0) {
                throw new IllegalArgumentException("number of layers at middle stage: " + middleLayers + " must be divisible"
                        + " by the middle pipeline model parallel size " + middleStages);
            }
            Arrays.fill(perRank, middleStages > 0 ? middleLayers / middleStages : 0);
            if (first != null) {
                perRank[0] = first;
            }
            if (last != null) {
                perRank[stages - 1] = last;
            }
        } else {
            int counted = numLayers + (accountForEmbedding ? 1 : 0) + (accountForLoss ? 1 : 0);
            if (counted % stages != 0) {
                throw new IllegalArgumentException("--num-layers " + numLayers + (counted != numLayers
                        ? " + " + (counted - numLayers) + " (embedding/loss counted as layers) = " + counted : "")
                        + " is not divisible by --pipeline-model-parallel-size " + stages);
            }
            Arrays.fill(perRank, counted / stages);
        }
        int[] counts = new int[stages * chunksPerStage];
        for (int s = 0; s < stages; s++) {
            if (perRank[s] % chunksPerStage != 0) {
                throw new IllegalArgumentException("number of layers on pipeline rank " + s + ": " + perRank[s]
                        + (accountForEmbedding || accountForLoss ? " (with the embedding/loss counted as layers)" : "")
                        + " must be divisible by the virtual pipeline parallel degree " + chunksPerStage);
            }
            for (int v = 0; v < chunksPerStage; v++) {
                counts[v * stages + s] = perRank[s] / chunksPerStage;
            }
        }
        if (accountForEmbedding) {
            counts[0]--;
        }
        if (accountForLoss) {
            counts[counts.length - 1]--;
        }
        if (counts[0] < 0 || counts[counts.length - 1] < 0) {
            throw new IllegalArgumentException("Not enough layers in the first (or last) virtual pipeline stage to count"
                    + " the embedding (loss) as one of them");
        }
        return new PipelineLayout(stages, chunksPerStage, counts);
    }

    private static void requirePositive(String flag, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(flag + " must be larger than 0, got " + value);
        }
    }

    private static final Pattern GROUP_REPEAT = Pattern.compile("\\(([^)]+)\\)\\*(\\d+)");
    private static final Pattern CHAR_REPEAT = Pattern.compile("(.)\\*(\\d+)");

    /** The virtual stages of a {@code --pipeline-model-parallel-layout} string, unrolled ("Et*3|(tt|)*2,L" -> 4 stages). */
    public static List<String> stagesOf(String layout) {
        String s = layout.replace(",", "");                         // commas are cosmetic
        s = unroll(GROUP_REPEAT, s);
        s = unroll(CHAR_REPEAT, s);
        List<String> out = new ArrayList<>();
        for (String stage : s.split("\\|", -1)) {
            for (char c : stage.toCharArray()) {
                if ("ELtm".indexOf(c) < 0) {
                    throw new IllegalArgumentException("--pipeline-model-parallel-layout \"" + layout + "\": invalid layer"
                            + " character '" + c + "' in stage \"" + stage + "\"; known layer characters: E (embedding),"
                            + " t (transformer layer), m (MTP layer), L (loss)");
                }
            }
            out.add(stage);
        }
        return out;
    }

    private static String unroll(Pattern p, String s) {
        Matcher m = p.matcher(s);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            m.appendReplacement(out, Matcher.quoteReplacement(m.group(1).repeat(Integer.parseInt(m.group(2)))));
        }
        m.appendTail(out);
        return out.toString();
    }

    /**
     * Megatron's {@code --pipeline-model-parallel-layout}: virtual stages separated by '|', in the order
     * (chunk 0 of every rank, chunk 1 of every rank, ...), with Megatron's checks (the embedding first, the loss last,
     * each once, {@code numLayers} 't', the MTP layers 'm' after every decoder layer). Here the embedding must sit in
     * the first virtual stage and the loss in the last, and the MTP layers, if any, in the last with the loss (where
     * Megatron-J runs the depths; {@link #mtpLayers} counts them for the check against {@code --mtp-num-layers}).
     */
    public static PipelineLayout parse(String layout, int stages, int numLayers) {
        List<String> virtual = stagesOf(layout);
        if (virtual.size() % stages != 0) {
            throw new IllegalArgumentException("The length of pipeline_model_parallel_layout must be divisible by"
                    + " pipeline_model_parallel_size (num_stages=" + virtual.size() + ", pipeline_model_parallel_size="
                    + stages + "): --pipeline-model-parallel-layout \"" + layout + "\"");
        }
        String flat = String.join("", virtual);
        String where = "--pipeline-model-parallel-layout \"" + layout + "\": ";
        if (flat.isEmpty() || flat.charAt(0) != 'E') {
            throw new IllegalArgumentException(where + "The first layer must be embedding");
        }
        if (flat.charAt(flat.length() - 1) != 'L') {
            throw new IllegalArgumentException(where + "The last layer must be loss");
        }
        if (count(flat, 'E') != 1) {
            throw new IllegalArgumentException(where + "Embedding must be specified exactly once");
        }
        if (count(flat, 'L') != 1) {
            throw new IllegalArgumentException(where + "Loss must be specified exactly once");
        }
        if (count(flat, 't') != numLayers) {
            throw new IllegalArgumentException(where + "Number of decoder layers " + count(flat, 't')
                    + " must match num_layers " + numLayers);
        }
        int mtp = count(flat, 'm');
        if (mtp > 0 && flat.indexOf('m') < flat.lastIndexOf('t')) {
            throw new IllegalArgumentException(where + "decoder layers must be placed before MTP layers");
        }
        if (mtp > count(virtual.getLast(), 'm')) {
            throw new IllegalArgumentException(where + "Megatron-J runs the MTP layers on the last virtual stage, with the"
                    + " loss; this layout puts some elsewhere (Megatron's standalone MTP stage is not built)");
        }
        if (virtual.getFirst().indexOf('E') < 0) {
            throw new IllegalArgumentException(where + "Megatron-J keeps the embedding in the first virtual stage"
                    + " (pipeline rank 0, chunk 0); this layout leaves that stage empty");
        }
        if (virtual.getLast().indexOf('L') < 0) {
            throw new IllegalArgumentException(where + "Megatron-J keeps the loss in the last virtual stage; this layout"
                    + " leaves that stage empty");
        }
        int[] counts = new int[virtual.size()];
        for (int i = 0; i < counts.length; i++) {
            counts[i] = count(virtual.get(i), 't');
        }
        return new PipelineLayout(stages, virtual.size() / stages, counts);
    }

    /** The MTP layers ('m') a {@code --pipeline-model-parallel-layout} string places (it must equal --mtp-num-layers). */
    public static int mtpLayers(String layout) {
        return count(String.join("", stagesOf(layout)), 'm');
    }

    private static int count(String s, char c) {
        return (int) s.chars().filter(x -> x == c).count();
    }

    /** Model chunk {@code chunk} of pipeline rank {@code stage}. */
    public ModelChunk chunk(int stage, int chunk) {
        if (stage < 0 || stage >= stages || chunk < 0 || chunk >= chunksPerStage) {
            throw new IllegalArgumentException("no model chunk " + chunk + " of pipeline rank " + stage + " in a layout of "
                    + stages + " stages x " + chunksPerStage + " chunks");
        }
        int index = chunk * stages + stage;
        int first = 0;
        for (int i = 0; i < index; i++) {
            first += layers[i];
        }
        return new ModelChunk(first, layers[index], index == 0, index == layers.length - 1);
    }

    public int stages() {
        return stages;
    }

    public int chunksPerStage() {
        return chunksPerStage;
    }

    /** Decoder layers per virtual stage, in virtual-stage order. */
    public int[] layers() {
        return layers.clone();
    }

    public int numLayers() {
        return Arrays.stream(layers).sum();
    }

    /** True when every virtual stage holds the same number of layers (Megatron's default split). */
    public boolean isEven() {
        return Arrays.stream(layers).allMatch(n -> n == layers[0]);
    }

    /** The layout as a {@code --pipeline-model-parallel-layout} string ("Et*2|t*2|t*2|t*2L"). */
    public String toLayoutString() {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < layers.length; i++) {
            if (i > 0) {
                s.append('|');
            }
            if (i == 0) {
                s.append('E');
            }
            s.append(layers[i] == 1 ? "t" : layers[i] > 1 ? "t*" + layers[i] : "");
            if (i == layers.length - 1) {
                s.append('L');
            }
        }
        return s.toString();
    }

    /** Megatron's pretty form: a line per pipeline rank, a column per chunk ("embedding,decoder*2"). */
    public String describe() {
        StringBuilder out = new StringBuilder();
        for (int s = 0; s < stages; s++) {
            out.append(String.format(Locale.ROOT, "PP rank %d", s));
            for (int v = 0; v < chunksPerStage; v++) {
                ModelChunk c = chunk(s, v);
                List<String> parts = new ArrayList<>();
                if (c.preProcess()) {
                    parts.add("embedding");
                }
                if (c.numLayers() > 0) {
                    parts.add(c.numLayers() == 1 ? "decoder" : "decoder*" + c.numLayers());
                }
                if (c.postProcess()) {
                    parts.add("loss");
                }
                out.append(v == 0 ? "    " : "    |    ").append(String.join(",", parts));
            }
            out.append('\n');
        }
        return out.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PipelineLayout p && p.stages == stages && p.chunksPerStage == chunksPerStage
                && Arrays.equals(p.layers, layers);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * stages + chunksPerStage) + Arrays.hashCode(layers);
    }

    @Override
    public String toString() {
        return toLayoutString();
    }
}
