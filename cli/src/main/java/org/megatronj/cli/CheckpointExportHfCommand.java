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
import org.megatronj.parallel.checkpoint.Gpt2HfConfig;
import org.megatronj.parallel.checkpoint.Gpt2HfWeights;
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

/** {@code megatron checkpoint export-hf}: the latest checkpoint's weights as a Hugging Face GPT-2 folder. */
@Command(name = "export-hf", mixinStandardHelpOptions = true,
        description = {"Write a checkpoint's weights as a Hugging Face GPT-2 model (config.json + model.safetensors,",
                "transformer.* names, Conv1D layout, the vocabulary cut back to its unpadded size), in one file",
                "(no sharding), in the dtype that config.json's torch_dtype then declares."})
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
                throw new IllegalArgumentException(c.rankDir() + "/metadata.json has no 'model' config; cannot tell the GPT-2 shape");
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
            Map<String, Tensor> hf = Gpt2HfWeights.toHf(weights, config, out, arena);
            ObjectNode hfConfig = Gpt2HfConfig.toJson(config, imported, out);
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
