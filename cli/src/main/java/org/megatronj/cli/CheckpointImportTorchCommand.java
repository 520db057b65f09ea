package org.megatronj.cli;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.checkpoint.CheckpointLayout;
import org.megatronj.io.torch.TorchFile;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.parallel.train.TrainingCheckpointer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code megatron checkpoint import-torch}: a Megatron-LM {@code --ckpt-format torch} checkpoint to a Megatron-J one. */
@Command(name = "import-torch", mixinStandardHelpOptions = true,
        description = {"Convert a Megatron-LM checkpoint saved with --ckpt-format torch (a Megatron-core GPT, one tensor-",
                "and pipeline-parallel rank: iter_N/mp_rank_00/model_optim_rng.pt) into an F32 release checkpoint whose",
                "arguments are the run's model and tokenizer flags: generate, evaluate and serve read it as it is,",
                "pretrain gpt --load it with --use-checkpoint-args (weights only; the optimizer state is not read).",
                "The tokenizer is the run's unless tokenizer flags are given (its files must be readable here).",
                "Nothing in the file is executed: its pickle is read as data."})
final class CheckpointImportTorchCommand implements Callable<Integer> {
    @Option(names = "--load", required = true, paramLabel = "DIR",
            description = "Megatron-LM's checkpoint folder (its --save: latest_checkpointed_iteration.txt and iter_*/).")
    Path load;

    @Option(names = "--save", required = true, paramLabel = "DIR", description = "Checkpoint folder to write (tracker 'release').")
    Path save;

    @CommandLine.Mixin
    TokenizerOptions tokenizer;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        CheckpointLayout.requireNoCheckpoint(save, "--save");
        Path file = MegatronTorchCheckpoint.latestFile(load);
        ObjectMapper json = new ObjectMapper();
        try (TorchFile torch = TorchFile.open(file); TensorArena arena = TensorArena.named("import-torch")) {
            MegatronTorchCheckpoint.Contents c = MegatronTorchCheckpoint.read(torch, file, tokenizer);
            Map<String, Tensor> weights = MegatronTorchCheckpoint.weights(torch, c, arena);
            ObjectNode extra = json.createObjectNode();
            extra.put("imported_from", file.toString());
            extra.put("imported_iteration", c.iteration());
            long bytes = new TrainingCheckpointer(json.valueToTree(c.config()), MegatronTorchCheckpoint.savedArgs(c))
                    .saveRelease(save, weights, extra);
            spec.commandLine().getOut().printf("imported %s (iteration %d; %d layers, hidden %d, padded vocab %d): %d tensors,"
                            + " %.1f MiB -> %s%n  model flags: %s%n", file, c.iteration(), c.config().numLayers(),
                    c.config().hiddenSize(), c.config().paddedVocabSize(), weights.size(), bytes / 1048576.0, save,
                    String.join(" ", c.modelFlags()));
        }
        return 0;
    }
}
