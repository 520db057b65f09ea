package org.megatronj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.megatronj.io.checkpoint.Checkpoint;
import org.megatronj.io.tokenizer.Tokenizer;
import org.megatronj.memory.Backend;
import org.megatronj.memory.Backends;
import org.megatronj.model.GPTModel;
import org.megatronj.model.Precision;
import org.megatronj.model.TransformerConfig;
import org.megatronj.parallel.train.TrainingCheckpointer;

import java.nio.file.Path;

/**
 * A GPT model and tokenizer loaded from the latest checkpoint under a folder, the way Megatron's
 * {@code --use-checkpoint-args} does: the architecture comes from the checkpoint's saved model
 * configuration, the tokenizer from the tokenizer flags when given, else from the saved arguments.
 * Used by {@code generate}, {@code serve} and {@code evaluate}.
 */
public record CheckpointModel(Backend backend, GPTModel model, Tokenizer tokenizer, long iteration)
        implements AutoCloseable {

    /** The model in fp32. */
    public static CheckpointModel load(Path root, TokenizerOptions tokenizerFlags, String device) {
        return load(root, tokenizerFlags, device, Precision.FP32);
    }

    /**
     * The model computing in {@code precision}: with BF16/F16 ({@code --bf16}/{@code --fp16}) the
     * layers read a 16-bit copy of the checkpoint's F32 weights, cast once here.
     */
    public static CheckpointModel load(Path root, TokenizerOptions tokenizerFlags, String device, Precision precision) {
        try (Checkpoint ckpt = Checkpoint.openLatest(root, TrainingCheckpointer.RANK_DIR)) {
            JsonNode meta = ckpt.metadata();
            TransformerConfig config = savedConfig(ckpt);
            MlaOptions.checkDevice(device, config);
            Tokenizer tokenizer = tokenizerFlags != null && tokenizerFlags.isSet() ? tokenizerFlags.build()
                    : savedTokenizer(meta.path("args"), ckpt);
            if (tokenizer.vocabSize() != config.vocabSize()) {   // ids past a smaller tokenizer's end would be sampled as garbage
                throw new IllegalArgumentException("the tokenizer has " + tokenizer.vocabSize() + " tokens but the model in "
                        + ckpt.rankDir() + " was trained with a vocabulary of " + config.vocabSize()
                        + ": pass the tokenizer flags of its training run, or none to use the ones it saved");
            }
            Backend backend = Backends.create(device);
            GPTModel model = null;
            try {
                model = new GPTModel(config, backend, 0, precision);
                TrainingCheckpointer.loadWeights(ckpt, model.parameters(), backend);
                model.refreshComputeWeights();   // the 16-bit copy of the loaded weights (nothing in fp32)
                return new CheckpointModel(backend, model, tokenizer, ckpt.iteration());
            } catch (RuntimeException e) {
                if (model != null) {
                    model.close();
                }
                backend.close();
                throw e;
            }
        }
    }

    /** The model configuration a checkpoint's metadata.json records. */
    static TransformerConfig savedConfig(Checkpoint ckpt) {
        JsonNode meta = ckpt.metadata();
        if (!meta.has("model")) {
            throw new IllegalArgumentException(ckpt.rankDir() + "/metadata.json has no 'model' configuration");
        }
        try {
            return new ObjectMapper().treeToValue(meta.get("model"), TransformerConfig.class).validate();
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(ckpt.rankDir() + "/metadata.json: unreadable 'model' configuration: "
                    + e.getOriginalMessage(), e);
        }
    }

    /** The tokenizer the checkpoint was trained with, from its saved command-line arguments. */
    static Tokenizer savedTokenizer(JsonNode args, Checkpoint ckpt) {
        TokenizerOptions saved = new TokenizerOptions();
        saved.takeFromSavedArgs(args, ckpt.rankDir());
        return saved.build();
    }

    @Override
    public void close() {
        model.close();
        backend.close();
    }
}
