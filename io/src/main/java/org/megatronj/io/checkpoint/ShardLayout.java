package org.megatronj.io.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Arrays;
import java.util.Locale;
import java.util.Objects;

/**
 * How a checkpoint is split into (tensor, pipeline) rank folders, as its {@code metadata.json}
 * records it under {@code "parallel"}. A checkpoint without that entry (a single-rank run, an
 * import) is the 1 x 1 layout: one {@code mp_rank_00} folder with whole tensors.
 *
 * @param tensorParallel       TP size the shards were cut for (also fixes the vocabulary padding)
 * @param pipelineParallel     PP size: the layer stack is split into this many stage folders
 * @param chunksPerStage       model chunks per stage (interleaved schedule; 1 otherwise)
 * @param dataParallel         DP size at save time, DP x CP under context parallelism (the distributed optimizer's
 *                             shard files; a checkpoint loads at any DP)
 * @param distributedOptimizer true when the Adam moments are in {@code distrib_optim_dp_DDD} files
 * @param virtualStageLayers   decoder layers of each virtual stage (chunk v of stage s at {@code v * PP + s}) when the
 *                             split is not even; null = Megatron's even split
 */
public record ShardLayout(int tensorParallel, int pipelineParallel, int chunksPerStage, int dataParallel,
                          boolean distributedOptimizer, int[] virtualStageLayers) {
    public static final String KEY = "parallel";
    public static final ShardLayout SINGLE = new ShardLayout(1, 1, 1, 1, false);

    public ShardLayout {
        if (tensorParallel < 1 || pipelineParallel < 1 || chunksPerStage < 1 || dataParallel < 1) {
            throw new CheckpointException("checkpoint layout sizes must be >= 1, got TP " + tensorParallel + ", PP "
                    + pipelineParallel + ", chunks per stage " + chunksPerStage + ", DP " + dataParallel);
        }
        if (virtualStageLayers != null && virtualStageLayers.length != pipelineParallel * chunksPerStage) {
            throw new CheckpointException("checkpoint layout: " + virtualStageLayers.length + " layer counts for "
                    + pipelineParallel + " stages x " + chunksPerStage + " chunks");
        }
        virtualStageLayers = virtualStageLayers == null ? null : virtualStageLayers.clone();
    }

    /** Megatron's even split of the layers. */
    public ShardLayout(int tensorParallel, int pipelineParallel, int chunksPerStage, int dataParallel,
                       boolean distributedOptimizer) {
        this(tensorParallel, pipelineParallel, chunksPerStage, dataParallel, distributedOptimizer, null);
    }

    /** The layout recorded in a rank folder's metadata ({@link #SINGLE} when there is none). */
    public static ShardLayout fromMetadata(JsonNode metadata) {
        JsonNode p = metadata.path(KEY);
        if (!p.isObject()) {
            return SINGLE;
        }
        int[] layers = null;
        if (p.path("virtual_stage_layers").isArray()) {
            JsonNode counts = p.get("virtual_stage_layers");
            layers = new int[counts.size()];
            for (int i = 0; i < layers.length; i++) {
                layers[i] = counts.get(i).asInt(-1);
            }
        }
        return new ShardLayout(p.path("tensor_parallel_size").asInt(1), p.path("pipeline_parallel_size").asInt(1),
                p.path("chunks_per_stage").asInt(1), p.path("data_parallel_size").asInt(1),
                p.path("distributed_optimizer").asBoolean(false), layers);
    }

    /** Writes this layout and the folder's own ranks into {@code metadata} under {@code "parallel"}. */
    public void writeTo(ObjectNode metadata, int tensorRank, int pipelineRank) {
        ObjectNode p = metadata.putObject(KEY);
        p.put("tensor_parallel_size", tensorParallel);
        p.put("pipeline_parallel_size", pipelineParallel);
        p.put("chunks_per_stage", chunksPerStage);
        p.put("data_parallel_size", dataParallel);
        p.put("distributed_optimizer", distributedOptimizer);
        if (virtualStageLayers != null) {
            var counts = p.putArray("virtual_stage_layers");
            for (int n : virtualStageLayers) {
                counts.add(n);
            }
        }
        p.put("tensor_rank", tensorRank);
        p.put("pipeline_rank", pipelineRank);
    }

    /** True when the weights are split over more than one folder (or cut for TP > 1). */
    public boolean sharded() {
        return tensorParallel * pipelineParallel > 1;
    }

    /** Megatron's folder name of (tensor rank, pipeline rank) in this layout. */
    public String rankDirName(int tensorRank, int pipelineRank) {
        return CheckpointLayout.rankDirName(tensorRank, pipelineRank, pipelineParallel > 1);
    }

    /** True when a run with these model-parallel sizes and layer split can load the folders as they are (DP may differ). */
    public boolean sameModelParallel(ShardLayout run) {
        return tensorParallel == run.tensorParallel && pipelineParallel == run.pipelineParallel
                && chunksPerStage == run.chunksPerStage && Arrays.equals(virtualStageLayers, run.virtualStageLayers);
    }

    @Override
    public int[] virtualStageLayers() {
        return virtualStageLayers == null ? null : virtualStageLayers.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ShardLayout l && l.tensorParallel == tensorParallel && l.pipelineParallel == pipelineParallel
                && l.chunksPerStage == chunksPerStage && l.dataParallel == dataParallel
                && l.distributedOptimizer == distributedOptimizer && Arrays.equals(l.virtualStageLayers, virtualStageLayers);
    }

    @Override
    public int hashCode() {
        return Objects.hash(tensorParallel, pipelineParallel, chunksPerStage, dataParallel, distributedOptimizer)
                + 31 * Arrays.hashCode(virtualStageLayers);
    }

    @Override
    public String toString() {
        return describe();
    }

    public String describe() {
        return String.format(Locale.ROOT, "tensor-parallel %d, pipeline-parallel %d%s%s, saved at data-parallel %d%s",
                tensorParallel, pipelineParallel, chunksPerStage > 1 ? " (" + chunksPerStage + " chunks per stage)" : "",
                virtualStageLayers != null ? " with " + Arrays.toString(virtualStageLayers) + " layers per virtual stage" : "",
                dataParallel, distributedOptimizer ? " with the distributed optimizer" : "");
    }
}
