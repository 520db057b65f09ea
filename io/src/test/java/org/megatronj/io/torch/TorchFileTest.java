package org.megatronj.io.torch;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A checkpoint PyTorch's own {@code torch.save} wrote (make_torch_fixtures.py): the pickled state dict read as data,
 * and every tensor's values (bf16, fp16, fp32, a transposed view, a view at an offset into a shared storage).
 */
class TorchFileTest {
    @TempDir
    Path dir;

    static Path fixture(String name) {
        try {
            return Path.of(TorchFileTest.class.getResource(name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static Path checkpointFile() {
        return fixture("megatron-gpt").resolve("iter_0000010/mp_rank_00/model_optim_rng.pt");
    }

    @Test
    void readsTheStateDictAndEveryTensor() throws IOException {
        JsonNode expected = new ObjectMapper().readTree(fixture("expected.json").toFile()).get("tensors");
        try (TorchFile torch = TorchFile.open(checkpointFile())) {
            Map<?, ?> state = (Map<?, ?>) torch.root();
            assertEquals(10L, state.get("iteration"));
            assertEquals(3.0, state.get("checkpoint_version"));
            assertEquals(1.5e12, state.get("num_floating_point_operations_so_far"));
            Unpickler.Instance args = assertInstanceOf(Unpickler.Instance.class, state.get("args"));
            assertEquals(new Unpickler.Global("argparse", "Namespace"), args.type());
            Map<?, ?> a = (Map<?, ?>) args.state();
            assertEquals(1L, a.get("num_layers"));
            assertEquals("learned_absolute", a.get("position_embedding_type"));
            assertEquals(Boolean.FALSE, a.get("group_query_attention"));
            assertEquals(new Unpickler.Global("torch", "bfloat16"), a.get("params_dtype"));
            assertEquals(List.of("my-corpus_text_document"), a.get("data_path"));
            assertNull(a.get("vocab_file"));
            assertEquals(0.02, a.get("init_method_std"));

            Map<?, ?> model = (Map<?, ?>) state.get("model");
            assertNull(model.get("decoder.layers.0.self_attention.linear_proj._extra_state"));
            Unpickler.Instance extra = assertInstanceOf(Unpickler.Instance.class,
                    model.get("decoder.layers.0.self_attention.linear_qkv._extra_state"));
            assertEquals(new Unpickler.Global("_io", "BytesIO"), extra.type());
            assertEquals(expected.size(), model.values().stream().filter(v -> v instanceof TorchFile.TensorRef).count());
            for (var it = expected.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                TorchFile.TensorRef t = assertInstanceOf(TorchFile.TensorRef.class, model.get(e.getKey()), e.getKey());
                assertEquals(e.getValue().get("dtype").asText(), t.dtype(), e.getKey());
                long[] shape = new long[e.getValue().get("shape").size()];
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = e.getValue().get("shape").get(i).asLong();
                }
                assertArrayEquals(shape, t.shape(), e.getKey());
                float[] want = new float[e.getValue().get("values").size()];
                for (int i = 0; i < want.length; i++) {
                    want[i] = (float) e.getValue().get("values").get(i).asDouble();
                }
                assertArrayEquals(want, torch.floats(t), e.getKey());
            }
        }
    }

    @Test
    void badFilesSayWhatTheyAre() throws IOException {
        Path notZip = dir.resolve("legacy.pt");
        Files.write(notZip, new byte[] {(byte) 0x80, 2, 'K', 1, '.'});
        var e = assertThrows(IllegalArgumentException.class, () -> TorchFile.open(notZip));
        assertTrue(e.getMessage().contains("is not a zip file: PyTorch's legacy (before 1.6) format"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TorchFile.open(dir.resolve("missing.pt")));
        assertTrue(e.getMessage().endsWith("missing.pt: no such file"), e.getMessage());

        Path truncated = dir.resolve("truncated.pkl");
        byte[] pickle = {(byte) 0x80, 2, '}', 'q', 0, 'X', 5, 0, 0, 0, 'a', 'b'};   // a dict, then a 5-byte string cut short
        e = assertThrows(IllegalArgumentException.class,
                () -> new Unpickler(pickle, truncated.toString(), Map.of(), null).load());
        assertTrue(e.getMessage().contains("runs past the pickle's end"), e.getMessage());
        byte[] opcode = {(byte) 0x80, 2, 'Z', '.'};
        e = assertThrows(IllegalArgumentException.class, () -> new Unpickler(opcode, "x.pkl", Map.of(), null).load());
        assertTrue(e.getMessage().contains("pickle opcode 0x5a at byte 2 is not supported"), e.getMessage());
    }
}
