package org.megatronj.parallel;

import org.megatronj.model.PipelineLayout;

/**
 * How the layers are split over the pipeline stages beyond Megatron's even default, with its flags.
 *
 * @param firstStageLayers     {@code --decoder-first-pipeline-num-layers} (null = even)
 * @param lastStageLayers      {@code --decoder-last-pipeline-num-layers} (null = even)
 * @param accountForEmbedding  {@code --account-for-embedding-in-pipeline-split}: the embedding counts as a layer
 * @param accountForLoss       {@code --account-for-loss-in-pipeline-split}: the loss counts as a layer
 * @param virtualStagesPerRank {@code --num-virtual-stages-per-pipeline-rank} (null = not given)
 * @param layout               {@code --pipeline-model-parallel-layout} (null = not given)
 */
public record PipelineSplit(Integer firstStageLayers, Integer lastStageLayers, boolean accountForEmbedding,
                            boolean accountForLoss, Integer virtualStagesPerRank, String layout) {

    /** Megatron's default: layers evenly over the stages. */
    public static final PipelineSplit EVEN = new PipelineSplit(null, null, false, false, null, null);

    public PipelineSplit {
        if (layout != null && (firstStageLayers != null || lastStageLayers != null || accountForEmbedding || accountForLoss)) {
            throw new IllegalArgumentException("--pipeline-model-parallel-layout cannot be set with other pipeline layout"
                    + " arguments (--decoder-first-pipeline-num-layers, --decoder-last-pipeline-num-layers,"
                    + " --account-for-embedding-in-pipeline-split, --account-for-loss-in-pipeline-split)");
        }
        if (virtualStagesPerRank != null && virtualStagesPerRank < 1) {
            throw new IllegalArgumentException("--num-virtual-stages-per-pipeline-rank must be >= 1, got " + virtualStagesPerRank);
        }
    }

    /** Virtual stages (model chunks) per pipeline rank that these flags ask for; 0 when they do not say. */
    int chunksPerStage(int stages) {
        if (layout != null) {
            int virtual = PipelineLayout.stagesOf(layout).size();
            if (virtual % stages != 0) {
                throw new IllegalArgumentException("The length of pipeline_model_parallel_layout must be divisible by"
                        + " pipeline_model_parallel_size (num_stages=" + virtual + ", pipeline_model_parallel_size="
                        + stages + ")");
            }
            return virtual / stages;
        }
        return virtualStagesPerRank != null ? virtualStagesPerRank : 0;
    }

    /** The layout of {@code numLayers} layers over {@code stages} ranks of {@code chunksPerStage} chunks each. */
    PipelineLayout layout(int numLayers, int stages, int chunksPerStage) {
        if (layout != null) {
            return PipelineLayout.parse(layout, stages, numLayers);
        }
        return PipelineLayout.megatron(numLayers, stages, chunksPerStage, firstStageLayers, lastStageLayers,
                accountForEmbedding, accountForLoss);
    }

    public boolean isEven() {
        return equals(EVEN);
    }
}
