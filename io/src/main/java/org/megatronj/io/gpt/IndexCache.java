package org.megatronj.io.gpt;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Megatron's index cache naming: {@code <dir>/<md5>-<Class>-<split>-<affix>}, e.g.
 * {@code 3f0c...-GPTDataset-train-document_index.npy} next to {@code ...-description.txt}.
 * A cache entry counts as present only when the description and every array file exist, as in
 * Megatron; files are written under temporary names and renamed, the description last.
 *
 * @param directory the cache folder
 * @param description the dataset's description (its MD5 names the files)
 * @param className {@code GPTDataset}, {@code MockGPTDataset} or {@code BlendedDataset}
 * @param split the split
 */
public record IndexCache(Path directory, CacheDescription description, String className, Split split) {
    public static final String GPT_DATASET = "GPTDataset";
    public static final String MOCK_GPT_DATASET = "MockGPTDataset";
    public static final String BLENDED_DATASET = "BlendedDataset";

    /** Megatron's default GPT cache folder when no {@code --data-cache-path} is given: {@code <prefix>/cache/GPTDataset_indices}. */
    public static Path defaultGptDirectory(String datasetPrefix) {
        return Path.of(datasetPrefix, "cache", GPT_DATASET + "_indices");
    }

    /** The file for {@code affix} ({@code document_index.npy}, {@code description.txt}, ...). */
    public Path file(String affix) {
        return directory.resolve(description.md5() + "-" + className + "-" + split.megatronName() + "-" + affix);
    }

    public Path descriptionFile() {
        return file("description.txt");
    }

    /** The description and all {@code arrayAffixes} files exist. */
    public boolean isComplete(String... arrayAffixes) {
        if (!Files.isRegularFile(descriptionFile())) {
            return false;
        }
        for (String a : arrayAffixes) {
            if (!Files.isRegularFile(file(a))) {
                return false;
            }
        }
        return true;
    }

    /** All files of this entry, description first. */
    public List<Path> files(String... arrayAffixes) {
        List<Path> out = new ArrayList<>();
        out.add(descriptionFile());
        for (String a : arrayAffixes) {
            out.add(file(a));
        }
        return out;
    }

    /** Writes the description text exactly as Megatron does (no trailing newline), atomically. */
    public void writeDescription() throws IOException {
        Path target = descriptionFile();
        Files.createDirectories(directory);
        Path tmp = Files.createTempFile(directory, target.getFileName() + ".", ".tmp");
        try {
            Files.writeString(tmp, description.text(), StandardCharsets.UTF_8);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
