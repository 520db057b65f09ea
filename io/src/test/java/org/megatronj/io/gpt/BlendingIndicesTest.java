package org.megatronj.io.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.npy.NpyArray;
import org.megatronj.io.npy.NpyFile;

class BlendingIndicesTest {
    @TempDir
    Path tmp;

    @Test
    void matchesReferenceByteForByte() throws IOException {
        for (JsonNode b : ReferenceFixtures.cases().get("blends")) {
            String name = b.get("name").asText();
            double[] weights = new double[b.get("weights").size()];
            for (int i = 0; i < weights.length; i++) {
                weights[i] = b.get("weights").get(i).asDouble();
            }
            BlendingIndices idx = BlendingIndices.build(Normalize.normalize(Normalize.normalize(weights)), b.get("size").asInt());
            compare(name + "-dataset_index.npy", NpyArray.ofInt16(idx.datasetIndex()));
            compare(name + "-dataset_sample_index.npy", NpyArray.ofInt64(idx.datasetSampleIndex()));
        }
    }

    private void compare(String fixture, NpyArray ours) throws IOException {
        Path p = tmp.resolve(fixture);
        NpyFile.write(p, ours);
        assertArrayEquals(Files.readAllBytes(ReferenceFixtures.file(fixture)), Files.readAllBytes(p), fixture);
    }
}
