package org.megatronj.parallel;

import java.util.Arrays;
import java.util.List;

/**
 * One rank's place in the parallel layout (Megatron's {@code parallel_state} after
 * {@code initialize_model_parallel}): its tensor-, context-, pipeline- and data-parallel coordinates and
 * the global ranks of every group it belongs to. Pure arithmetic: communicators for the groups
 * are made from it by {@link org.megatronj.parallel.comm.ProcessGroups}.
 *
 * <p>Rank order is Megatron's "tp-cp-ep-dp-pp": {@code rank = tp + TP * (cp + CP * (dp + DP * pp))}, or with
 * {@code --use-tp-pp-dp-mapping} "tp-cp-ep-pp-dp": {@code rank = tp + TP * (cp + CP * (pp + PP * dp))}.
 * With 16 ranks, TP = 2 and PP = 4: tensor groups [0,1] [2,3] ...; data groups [0,2] [1,3] [4,6] ...;
 * pipeline groups [0,4,8,12] [1,5,9,13] [2,6,10,14] [3,7,11,15]. With 8 ranks, TP = 2 and CP = 2:
 * context groups [0,2] [1,3] [4,6] [5,7]; data groups [0,4] [1,5] [2,6] [3,7]; data-with-context
 * groups [0,2,4,6] [1,3,5,7].
 */
public final class ParallelState {
    private final ParallelConfig config;
    private final int worldSize;
    private final int rank;
    private final RankGenerator generator;
    private final int tensorRank;
    private final int contextRank;
    private final int dataRank;
    private final int pipelineRank;

    private ParallelState(ParallelConfig config, int worldSize, int rank) {
        this.config = config;
        this.worldSize = worldSize;
        this.rank = rank;
        this.generator = new RankGenerator(config.tensorModelParallelSize(), config.contextParallelSize(),
                config.dataParallelSize(worldSize), config.pipelineModelParallelSize(), config.tpPpDpMapping());
        int[] c = generator.coordinates(rank);
        this.tensorRank = c[RankGenerator.TP];
        this.contextRank = c[RankGenerator.CP];
        this.dataRank = c[RankGenerator.DP];
        this.pipelineRank = c[RankGenerator.PP];
    }

    /** The layout of {@code rank} among {@code worldSize} ranks; refuses a world not divisible by TP x PP x CP. */
    public static ParallelState of(ParallelConfig config, int worldSize, int rank) {
        config.validateWorldSize(worldSize);
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " is outside the world of " + worldSize + " ranks");
        }
        return new ParallelState(config, worldSize, rank);
    }

    public ParallelConfig config() {
        return config;
    }

    public int worldSize() {
        return worldSize;
    }

    public int rank() {
        return rank;
    }

    public int tensorModelParallelSize() {
        return config.tensorModelParallelSize();
    }

    public int pipelineModelParallelSize() {
        return config.pipelineModelParallelSize();
    }

    public int dataParallelSize() {
        return worldSize / config.ranksPerDataParallelIndex();
    }

    public int contextParallelSize() {
        return config.contextParallelSize();
    }

    public int contextParallelRank() {
        return contextRank;
    }

    public int tensorModelParallelRank() {
        return tensorRank;
    }

    public int pipelineModelParallelRank() {
        return pipelineRank;
    }

    public int dataParallelRank() {
        return dataRank;
    }

    public boolean isPipelineFirstStage() {
        return pipelineRank == 0;
    }

    public boolean isPipelineLastStage() {
        return pipelineRank == config.pipelineModelParallelSize() - 1;
    }

    /** Global rank of the next pipeline stage (wrapping around, as Megatron's ring). */
    public int pipelineNextRank() {
        return generator.rank(tensorRank, contextRank, dataRank, (pipelineRank + 1) % config.pipelineModelParallelSize());
    }

    /** Global rank of the previous pipeline stage (wrapping around). */
    public int pipelinePrevRank() {
        int pp = config.pipelineModelParallelSize();
        return generator.rank(tensorRank, contextRank, dataRank, (pipelineRank - 1 + pp) % pp);
    }

    /** The global rank at tensor/pipeline/data coordinates (context-parallel rank 0). */
    public int globalRank(int tensorRank, int pipelineRank, int dataRank) {
        return globalRank(tensorRank, pipelineRank, dataRank, 0);
    }

    /** The global rank at tensor/pipeline/data/context coordinates. */
    public int globalRank(int tensorRank, int pipelineRank, int dataRank, int contextRank) {
        return generator.rank(tensorRank, contextRank, dataRank, pipelineRank);
    }

    // ---------------------------------------------------------------- this rank's groups

    public int[] tensorModelParallelGroup() {
        return groupOf("tp");
    }

    public int[] pipelineModelParallelGroup() {
        return groupOf("pp");
    }

    /** The pure data-parallel group: ranks that run different micro-batches of the same sequence positions. */
    public int[] dataParallelGroup() {
        return groupOf("dp");
    }

    /** The ranks that split this rank's sequences: they differ only in their cp coordinate. */
    public int[] contextParallelGroup() {
        return groupOf("cp");
    }

    /**
     * DP x CP (Megatron's {@code get_data_parallel_group(with_context_parallel=True)}): every rank that holds a
     * replica of this rank's weights, over which gradients are averaged and the distributed optimizer shards.
     */
    public int[] dataParallelGroupWithContext() {
        return groupOf("cp-dp");
    }

    /** TP x PP: the ranks holding one copy of the model (grad-norm and inf checks reduce over it). */
    public int[] modelParallelGroup() {
        return groupOf("tp-pp");
    }

    /**
     * Ranks that hold the word embeddings and must all-reduce their gradients when input and
     * output embeddings are tied: the first and last stage of this rank's pipeline (one rank when
     * PP = 1). Empty when this rank is an intermediate stage.
     */
    public int[] embeddingGroup() {
        int[] pipeline = pipelineModelParallelGroup();
        int[] members = embeddingRanks(pipeline);
        return contains(members, rank) ? members : new int[0];
    }

    /** Ranks that hold learned position embeddings: the first stage of the pipeline. Empty elsewhere. */
    public int[] positionEmbeddingGroup() {
        int[] pipeline = pipelineModelParallelGroup();
        return pipeline[0] == rank ? new int[] {rank} : new int[0];
    }

    // ---------------------------------------------------------------- every group (for creating communicators)

    public List<int[]> allTensorModelParallelGroups() {
        return generator.groups("tp");
    }

    public List<int[]> allPipelineModelParallelGroups() {
        return generator.groups("pp");
    }

    public List<int[]> allDataParallelGroups() {
        return generator.groups("dp");
    }

    public List<int[]> allContextParallelGroups() {
        return generator.groups("cp");
    }

    public List<int[]> allDataParallelGroupsWithContext() {
        return generator.groups("cp-dp");
    }

    public List<int[]> allModelParallelGroups() {
        return generator.groups("tp-pp");
    }

    public List<int[]> allEmbeddingGroups() {
        return allPipelineModelParallelGroups().stream().map(ParallelState::embeddingRanks).toList();
    }

    /** Index of the group of {@code kind} ("tp", "pp", "dp", "cp", "cp-dp", "tp-pp") that holds this rank: the color of a communicator split. */
    public int groupIndex(String kind) {
        List<int[]> groups = generator.groups(kind);
        for (int i = 0; i < groups.size(); i++) {
            if (contains(groups.get(i), rank)) {
                return i;
            }
        }
        throw new IllegalStateException("rank " + rank + " is in no " + kind + " group of " + this);
    }

    // ---------------------------------------------------------------- naming ranks in messages

    /** "rank 5 (tp 1, pp 0, dp 2)", with ", cp 1" under context parallelism: how every error names this rank. */
    public String describe() {
        return describeRank(rank);
    }

    /** The same description for any global rank of this layout. */
    public String describeRank(int globalRank) {
        int[] c = generator.coordinates(globalRank);
        String cp = config.contextParallel() ? ", cp " + c[RankGenerator.CP] : "";
        return "rank " + globalRank + " (tp " + c[RankGenerator.TP] + ", pp " + c[RankGenerator.PP] + ", dp " + c[RankGenerator.DP]
                + cp + ")";
    }

    private int[] groupOf(String kind) {
        for (int[] g : generator.groups(kind)) {
            if (contains(g, rank)) {
                return g;
            }
        }
        throw new IllegalStateException("rank " + rank + " is in no " + kind + " group");
    }

    private static int[] embeddingRanks(int[] pipeline) {
        return pipeline.length == 1 ? pipeline.clone() : new int[] {pipeline[0], pipeline[pipeline.length - 1]};
    }

    private static boolean contains(int[] ranks, int rank) {
        return Arrays.stream(ranks).anyMatch(r -> r == rank);
    }

    @Override
    public String toString() {
        return "ParallelState[" + describe() + " of " + worldSize + "; TP " + config.tensorModelParallelSize()
                + ", PP " + config.pipelineModelParallelSize() + (config.contextParallel() ? ", CP " + contextParallelSize() : "")
                + ", DP " + dataParallelSize() + "]";
    }
}
