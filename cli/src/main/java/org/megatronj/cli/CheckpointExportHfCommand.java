package org.megatronj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.checkpoint.CheckpointWriter;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.io.safetensors.SafetensorsWriter;
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
                "transformer.* names, Conv1D layout, the vocabulary cut back to its unpadded size)."})
final class CheckpointExportHfCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR", description = "Checkpoint folder (its latest iteration).")
    Path load;

    @Option(names = "--hf-dir", required = true, paramLabel = "DIR", description = "Folder to write config.json and model.safetensors into.")
    Path hfDir;

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
            Map<String, Tensor> hf = Gpt2HfWeights.toHf(weights, config, arena);
            ObjectNode hfConfig = Gpt2HfConfig.toJson(config, c.metadata().get("hf_config"));
            Files.createDirectories(hfDir);
            SafetensorsWriter.write(hfDir.resolve("model.safetensors"), hf, Map.of("format", "pt"));
            CheckpointWriter.writeDurably(hfDir.resolve("config.json"),
                    (hfConfig.toPrettyString() + "\n").getBytes(StandardCharsets.UTF_8));
            spec.commandLine().getOut().printf("exported %s (iteration %d) to %s: %d tensors%n", c.rankDir(), c.iteration(), hfDir, hf.size());
        }
        return 0;
    }
}
