package org.megatronj.io.gpt;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Megatron's {@code unique_identifiers} of a dataset, the JSON text made from them
 * ({@code json.dumps(..., indent=4)}) and its MD5, which prefixes every cache file name.
 *
 * <p>GPTDataset: {@code class, dataset_path, num_samples, index_split}, then the config's
 * {@code random_seed, sequence_length, split, split_matrix, tokenizer} (MegatronDataset's
 * {@code _key_config_attributes}; GPTDataset adds none). BlendedDataset: {@code class, datasets}
 * (each contributing dataset's identifiers), {@code split, weights, size}.
 *
 * @param identifiers the ordered identifiers
 * @param text the JSON text Megatron writes to {@code ...-description.txt}
 * @param md5 the lower-case hex MD5 of {@code text} in UTF-8
 */
public record CacheDescription(Map<String, Object> identifiers, String text, String md5) {

    public static CacheDescription of(Map<String, Object> identifiers) {
        String text = PythonJson.dumps(identifiers);
        return new CacheDescription(identifiers, text, md5(text));
    }

    /** A GPTDataset split's description. */
    public static CacheDescription gpt(String datasetPath, Long numSamples, Split split, GptDatasetConfig config) {
        return gpt(IndexCache.GPT_DATASET, datasetPath, numSamples, split, config);
    }

    /** A split's description for Megatron's class {@code className} ({@code GPTDataset} or {@code MockGPTDataset}). */
    public static CacheDescription gpt(String className, String datasetPath, Long numSamples, Split split, GptDatasetConfig config) {
        Map<String, Object> u = new LinkedHashMap<>();
        u.put("class", className);
        u.put("dataset_path", datasetPath);
        u.put("num_samples", numSamples);
        u.put("index_split", split.megatronName());
        u.put("random_seed", config.randomSeed());
        u.put("sequence_length", config.sequenceLength());
        u.put("split", config.split());
        u.put("split_matrix", config.splitMatrix() == null ? null : config.splitMatrix().describe());
        u.put("tokenizer", config.tokenizer().value());
        return of(u);
    }

    /**
     * A BlendedDataset's description. {@code weights} are doubles when a size is given (Megatron
     * normalizes them) and the datasets' integer lengths otherwise.
     */
    public static CacheDescription blended(List<CacheDescription> datasets, Split split, List<? extends Number> weights, Long size) {
        Map<String, Object> u = new LinkedHashMap<>();
        u.put("class", "BlendedDataset");
        List<Object> parts = new ArrayList<>();
        for (CacheDescription d : datasets) {
            parts.add(d.identifiers());
        }
        u.put("datasets", parts);
        u.put("split", split.megatronName());
        u.put("weights", new ArrayList<Object>(weights));
        u.put("size", size);
        return of(u);
    }

    static String md5(String text) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(text.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("MD5 is missing from this JDK", e);
        }
    }
}
