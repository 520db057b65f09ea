package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointWriter;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.io.safetensors.SafetensorsWriter;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.checkpoint.DeepseekHfConfig;
import org.megatronj.parallel.checkpoint.DeepseekHfWeights;
import org.megatronj.parallel.checkpoint.Gpt2HfConfig;
import org.megatronj.parallel.checkpoint.Gpt2HfWeights;
import org.megatronj.parallel.checkpoint.LlamaHfConfig;
import org.megatronj.parallel.checkpoint.LlamaHfWeights;
import org.megatronj.parallel.train.TrainingCheckpointer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code megatron checkpoint export-hf}: the latest checkpoint's weights as a Hugging Face folder: GPT-2, or the
 * Llama-family architecture it was imported from (a model trained here with RMSNorm, SwiGLU and rope: Llama, Qwen2
 * with --add-qkv-bias, Qwen3 with --qk-layernorm; with experts Mixtral, Qwen2-MoE or Qwen3-MoE), or DeepSeek-V3 for a
 * model with multi-latent attention (without its multi-token-prediction depths).
 */
@Command(name = "export-hf", mixinStandardHelpOptions = true,
        description = {"Write a checkpoint's weights as a Hugging Face model (config.json + model.safetensors, the",
                "vocabulary cut back to its unpadded size), in one file (no sharding), in the dtype that config.json's",
                "torch_dtype then declares: GPT-2 (transformer.* names, Conv1D layout), or the imported Llama-family",
                "model_type (llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe; a model trained here with",
                "RMSNorm, --swiglu and rope is written as llama, qwen2 with --add-qkv-bias, qwen3 with --qk-layernorm, and",
                "with experts as mixtral, qwen2_moe or qwen3_moe); a model with --multi-latent-attention as deepseek_v3",
                "(DeepSeek-V3's routing and shared experts required; no MTP depths written)."})
final class CheckpointExportHfCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Checkpoint folder (its latest iteration).")
    Path load;

    @Option(names = "--hf-dir", required = true, paramLabel = "DIR", description = "Folder to write config.json and model.safetensors into.")
    Path hfDir;

    @Option(names = "--dtype", paramLabel = "fp32|bf16|fp16",
            description = {"Dtype of the written tensors (rounded to nearest even). Default: the torch_dtype of the",
                    "model import-hf read (so an import then export gives the same bytes), else fp32."})
    String dtype;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        ObjectMapper json = new ObjectMapper();
        try (Checkpoint c = Checkpoint.openLatest(load, TrainingCheckpointer.RANK_DIR);
             TensorArena arena = TensorArena.named("export-hf")) {
            if (!c.metadata().has("model")) {
                throw new IllegalArgumentException(c.rankDir() + "/metadata.json has no 'model' config; cannot tell the model's shape");
            }
            TransformerConfig config = json.treeToValue(c.metadata().get("model"), TransformerConfig.class);
            Map<String, Tensor> weights = new LinkedHashMap<>();
            SafetensorsFile file = c.model();
            for (String name : file.names()) {
                weights.put(name, file.tensor(name));
            }
            if (config.applyLayernorm1p()) {   // Hugging Face's LayerNorm weight is the scale itself: 1 + the stored weight
                weights.replaceAll((name, t) -> name.endsWith("layernorm.weight") ? plusOne(t, arena) : t);
                config = config.withLayernorm1p(false);
            }
            JsonNode imported = c.metadata().get(TrainingCheckpointer.HF_CONFIG);
            DType out = dtype != null ? parseDtype(dtype) : Gpt2HfConfig.declaredDtype(imported);
            Map<String, Tensor> hf;
            ObjectNode hfConfig;
            if (config.mla() != null) {   // DeepSeek-V3 is the Hugging Face architecture with multi-latent attention
                hfConfig = DeepseekHfConfig.toJson(config, imported, out);
                boolean interleaved = imported == null || !DeepseekHfConfig.isDeepseek(imported)
                        || DeepseekHfConfig.ropeInterleave(imported);
                hf = DeepseekHfWeights.toHf(weights, config, interleaved, out, arena);
            } else if (LlamaHfConfig.isLlamaFamily(config, imported)) {
                LlamaHfConfig.Arch arch = LlamaHfConfig.exportArch(config, imported);
                hfConfig = LlamaHfConfig.toJson(arch, config, imported, out);
                hf = LlamaHfWeights.toHf(weights, arch, config, out, arena);
            } else {
                hf = Gpt2HfWeights.toHf(weights, config, out, arena);
                hfConfig = Gpt2HfConfig.toJson(config, imported, out);
            }
            Files.createDirectories(hfDir);
            SafetensorsWriter.write(hfDir.resolve("model.safetensors"), hf, Map.of("format", "pt"));
            CheckpointWriter.writeDurably(hfDir.resolve("config.json"),
                    (hfConfig.toPrettyString() + "\n").getBytes(StandardCharsets.UTF_8));
            spec.commandLine().getOut().printf("exported %s (iteration %d) to %s: %d %s tensors%n", c.rankDir(), c.iteration(),
                    hfDir, hf.size(), out);
        }
        return 0;
    }

    private static Tensor plusOne(Tensor weight, TensorArena arena) {
        float[] values = weight.toFloatArray();
        for (int i = 0; i < values.length; i++) {
            values[i] += 1f;
        }
        return arena.fromFloats(values, weight.shape());
    }

    private static DType parseDtype(String name) {
        DType d = switch (name) {
            case "fp32", "float32" -> DType.F32;
            case "bf16", "bfloat16" -> DType.BF16;
            case "fp16", "float16" -> DType.F16;
            default -> null;
        };
        if (d == null) {
            throw new IllegalArgumentException("--dtype " + name + ": expected fp32, bf16 or fp16");
        }
        return d;
    }
}
