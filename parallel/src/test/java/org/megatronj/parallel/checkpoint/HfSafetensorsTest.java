package org.megatronj.parallel.checkpoint;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.io.safetensors.SafetensorsWriter;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.TransformerConfig;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HfSafetensorsTest {
    @TempDir
    Path dir;

    @Test
    void shardedWeightsImportLikeTheSingleFile() throws Exception {
        Path single = dir.resolve("single");
        Path sharded = dir.resolve("sharded");
        try (TensorArena arena = TensorArena.named("hf")) {
            TinyHfGpt2.write(single, arena, "transformer.", 3);
            TinyHfGpt2.write(sharded, arena, "transformer.", 3);
        }
        Map<String, String> weightMap = TinyHfGpt2.shard(sharded, 2);
        assertEquals(List.of("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"),
                weightMap.values().stream().distinct().toList());
        TransformerConfig config = Gpt2HfConfig.read(single, 128);
        try (TensorArena arena = TensorArena.named("hf");
             HfSafetensors one = HfSafetensors.open(single);
             HfSafetensors shards = HfSafetensors.open(sharded)) {
            assertEquals(single.resolve("model.safetensors"), one.path());
            assertEquals(sharded.resolve("model.safetensors.index.json"), shards.path());
            assertEquals(one.names(), shards.names());
            assertEquals(sharded.resolve("model-00002-of-00002.safetensors"), shards.pathOf("transformer.ln_f.bias"));
            Map<String, Tensor> a = Gpt2HfWeights.toMegatron(one, config, arena);
            Map<String, Tensor> b = Gpt2HfWeights.toMegatron(shards, config, arena);
            assertEquals(a.keySet(), b.keySet());
            for (String name : a.keySet()) {
                assertArrayEquals(a.get(name).segment().toArray(ValueLayout.JAVA_BYTE), b.get(name).segment().toArray(ValueLayout.JAVA_BYTE), name);
            }
        }
    }

    @Test
    void inconsistentShardsAreNamed() throws Exception {
        try (TensorArena arena = TensorArena.named("hf")) {
            TinyHfGpt2.write(dir, arena, "transformer.", 3);
        }
        TinyHfGpt2.shard(dir, 2);
        Path index = dir.resolve("model.safetensors.index.json");
        Path second = dir.resolve("model-00002-of-00002.safetensors");
        String goodIndex = Files.readString(index);

        // a tensor missing from the shard the index maps it to
        Files.writeString(index, goodIndex.replace("\"transformer.ln_f.bias\" : \"model-00002-of-00002.safetensors\"",
                "\"transformer.ln_f.bias\" : \"model-00001-of-00002.safetensors\""));
        var e = assertThrows(HfConfigException.class, () -> HfSafetensors.open(dir));
        assertEquals(dir.resolve("model-00001-of-00002.safetensors") + " has no tensor 'transformer.ln_f.bias', though "
                + index + " maps it there", e.getMessage());

        // a shard the index lists, missing from the folder
        Files.writeString(index, goodIndex);
        Path moved = dir.resolve("moved");
        Files.move(second, moved);
        e = assertThrows(HfConfigException.class, () -> HfSafetensors.open(dir));
        assertTrue(e.getMessage().startsWith(second + " is missing: " + index + " maps tensor 'transformer.h."), e.getMessage());
        Files.move(moved, second);

        // a shard holding a tensor the index does not list
        try (TensorArena arena = TensorArena.named("extra"); SafetensorsFile f = SafetensorsFile.open(second)) {
            Map<String, Tensor> t = new LinkedHashMap<>();
            f.names().forEach(n -> t.put(n, f.tensor(n)));
            t.put("lm_head.weight", arena.allocate(org.megatronj.memory.DType.F32, 1));
            SafetensorsWriter.write(dir.resolve("extra.safetensors"), t, Map.of());
        }
        Files.move(dir.resolve("extra.safetensors"), second, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        e = assertThrows(HfConfigException.class, () -> HfSafetensors.open(dir));
        assertEquals(second + " holds tensor 'lm_head.weight', which " + index + " does not list", e.getMessage());

        Files.writeString(index, "{\"metadata\": {}}");
        e = assertThrows(HfConfigException.class, () -> HfSafetensors.open(dir));
        assertEquals(index + ": expected {\"weight_map\": {tensor name: shard file name, ...}}", e.getMessage());

        Files.delete(index);
        e = assertThrows(HfConfigException.class, () -> HfSafetensors.open(dir));
        assertTrue(e.getMessage().startsWith(dir.resolve("model.safetensors") + " is missing and so is model.safetensors.index.json"),
                e.getMessage());
    }
}
