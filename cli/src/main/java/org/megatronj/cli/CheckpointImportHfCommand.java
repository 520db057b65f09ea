package org.megatronj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.DeepseekHfConfig;
import org.megatronj.parallel.checkpoint.DeepseekHfWeights;
import org.megatronj.parallel.checkpoint.Gpt2HfConfig;
import org.megatronj.parallel.checkpoint.Gpt2HfWeights;
import org.megatronj.parallel.checkpoint.HfSafetensors;
import org.megatronj.parallel.checkpoint.LlamaHfConfig;
import org.megatronj.parallel.checkpoint.LlamaHfWeights;
import org.megatronj.parallel.train.TrainingCheckpointer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code megatron checkpoint import-hf}: a Hugging Face GPT-2, Llama, Mistral, Qwen2, Qwen3, Mixtral, Qwen2-MoE,
 * Qwen3-MoE or DeepSeek-V3 folder to a Megatron-J release checkpoint.
 */
@Command(name = "import-hf", mixinStandardHelpOptions = true,
        description = {"Convert a Hugging Face model (config.json + model.safetensors, or the shards listed by",
                "model.safetensors.index.json) into an F32 checkpoint that pretrain gpt --load (weights only,",
                "iteration 0), generate and export-hf read; config.json is kept for export-hf (its torch_dtype included).",
                "model_type: gpt2, llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe or deepseek_v3."})
final class CheckpointImportHfCommand implements Callable<Integer> {
    @Option(names = "--hf-dir", required = true, paramLabel = "DIR", description = "Folder with config.json and model.safetensors (or its shards and index).")
    Path hfDir;

    @Option(names = "--save", required = true, paramLabel = "DIR", description = "Checkpoint folder to write (tracker 'release').")
    Path save;

    @Option(names = "--make-vocab-size-divisible-by", paramLabel = "N", defaultValue = "128",
            description = "Pad the embedding rows to a multiple of N, as training does (default ${DEFAULT-VALUE}).")
    int makeVocabSizeDivisibleBy;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        CheckpointLayout.requireNoCheckpoint(save, "--save");
        ObjectNode hfConfig = Gpt2HfConfig.readJson(hfDir);
        if (DeepseekHfConfig.isDeepseek(hfConfig)) {
            return importDeepseek(hfConfig);
        }
        DeepseekHfConfig.refuseOtherDeepseek(hfConfig, hfDir.resolve("config.json"));
        LlamaHfConfig.Arch arch = LlamaHfConfig.archOf(hfConfig);
        boolean gpt2 = arch == null && "gpt2".equals(hfConfig.path("model_type").asText());
        if (arch == null && !gpt2) {   // names every supported type
            LlamaHfConfig.toTransformerConfig(hfConfig, hfDir.resolve("config.json"), makeVocabSizeDivisibleBy);
        }
        TransformerConfig config = gpt2 ? Gpt2HfConfig.read(hfDir, makeVocabSizeDivisibleBy)
                : LlamaHfConfig.toTransformerConfig(hfConfig, hfDir.resolve("config.json"), makeVocabSizeDivisibleBy);
        ObjectMapper json = new ObjectMapper();
        try (TensorArena arena = TensorArena.named("import-hf"); HfSafetensors hf = HfSafetensors.open(hfDir)) {
            Map<String, Tensor> megatron = gpt2 ? Gpt2HfWeights.toMegatron(hf, config, arena)
                    : LlamaHfWeights.toMegatron(hf, arch, config, arena);
            ObjectNode extra = json.createObjectNode();
            extra.set(TrainingCheckpointer.HF_CONFIG, hfConfig);
            long bytes = new TrainingCheckpointer(json.valueToTree(config), CommandArgs.toJson(spec.commandLine().getParseResult()))
                    .saveRelease(save, megatron, extra);
            spec.commandLine().getOut().printf("imported %s (%s, %d layers, hidden %d, vocab %d padded to %d): %d tensors, %.1f MiB -> %s%n",
                    hfDir, gpt2 ? "gpt2" : arch.modelType(), config.numLayers(), config.hiddenSize(), config.vocabSize(), config.paddedVocabSize(),
                    megatron.size(), bytes / 1048576.0, save);
            if (!gpt2) {
                spec.commandLine().getOut().println("pretrain gpt model flags: " + LlamaHfConfig.megatronFlags(config));
            }
        }
        return 0;
    }

    /** DeepSeek-V3: multi-latent attention and sigmoid-routed experts; the stored MTP depths are left out with a note. */
    private int importDeepseek(ObjectNode hfConfig) {
        Path file = hfDir.resolve("config.json");
        TransformerConfig config = DeepseekHfConfig.toTransformerConfig(hfConfig, file, makeVocabSizeDivisibleBy);
        int mtpDepths = DeepseekHfConfig.mtpDepths(hfConfig, file);
        ObjectMapper json = new ObjectMapper();
        try (TensorArena arena = TensorArena.named("import-hf"); HfSafetensors hf = HfSafetensors.open(hfDir)) {
            Map<String, Tensor> megatron = DeepseekHfWeights.toMegatron(hf, config, DeepseekHfConfig.ropeInterleave(hfConfig),
                    mtpDepths, arena);
            ObjectNode extra = json.createObjectNode();
            extra.set(TrainingCheckpointer.HF_CONFIG, hfConfig);
            long bytes = new TrainingCheckpointer(json.valueToTree(config), CommandArgs.toJson(spec.commandLine().getParseResult()))
                    .saveRelease(save, megatron, extra);
            var out = spec.commandLine().getOut();
            out.printf("imported %s (%s, %d layers, hidden %d, %d experts, vocab %d padded to %d): %d tensors, %.1f MiB -> %s%n",
                    hfDir, DeepseekHfConfig.MODEL_TYPE, config.numLayers(), config.hiddenSize(), config.moe().numExperts(),
                    config.vocabSize(), config.paddedVocabSize(), megatron.size(), bytes / 1048576.0, save);
            if (mtpDepths > 0) {
                out.printf("note: left out the %d multi-token-prediction depth(s) stored as model.layers.%d%s (transformers"
                        + " drops them at load too); --mtp-num-layers trains new ones%n", mtpDepths, config.numLayers(),
                        mtpDepths > 1 ? "-" + (config.numLayers() + mtpDepths - 1) : "");
            }
            out.println("pretrain gpt model flags: " + DeepseekHfConfig.megatronFlags(config));
        }
        return 0;
    }
}
