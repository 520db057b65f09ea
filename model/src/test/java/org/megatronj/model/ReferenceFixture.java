package org.megatronj.model;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/** Reads a fixture written by {@code model/src/test/python/make_gpt_reference.py}. */
final class ReferenceFixture {
    final Map<String, String> config = new LinkedHashMap<>();
    final Map<String, float[]> weights = new LinkedHashMap<>();
    final Map<String, float[]> grads = new LinkedHashMap<>();
    final Map<String, float[]> outputs = new LinkedHashMap<>();

    ReferenceFixture(String variant) throws IOException {
        String base = "reference/" + variant + "/";
        for (String line : text(base + "config.txt").split("\n")) {
            if (!line.isBlank()) {
                int eq = line.indexOf('=');
                config.put(line.substring(0, eq), line.substring(eq + 1));
            }
        }
        ByteBuffer blob = ByteBuffer.wrap(bytes(base + "tensors.bin")).order(ByteOrder.LITTLE_ENDIAN);
        for (String line : text(base + "manifest.txt").split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.trim().split(" ");
            long numel = 1;
            for (int i = 3; i < f.length; i++) {
                numel *= Long.parseLong(f[i]);
            }
            float[] values = new float[(int) numel];
            int offset = Integer.parseInt(f[2]);
            for (int i = 0; i < values.length; i++) {
                values[i] = blob.getFloat((offset + i) * 4);
            }
            Map<String, float[]> target = switch (f[0]) {
                case "weight" -> weights;
                case "grad" -> grads;
                default -> outputs;
            };
            target.put(f[1], values);
        }
    }

    int integer(String key) {
        return Integer.parseInt(config.get(key));
    }

    boolean flag(String key) {
        return Boolean.parseBoolean(config.get(key).toLowerCase());
    }

    int[] ints(String key) {
        return Arrays.stream(config.get(key).trim().split(" ")).mapToInt(Integer::parseInt).toArray();
    }

    float[] floats(String key) {
        String[] parts = config.get(key).trim().split(" ");
        float[] out = new float[parts.length];
        for (int i = 0; i < parts.length; i++) {
            out[i] = Float.parseFloat(parts[i]);
        }
        return out;
    }

    private static byte[] bytes(String resource) throws IOException {
        try (InputStream in = ReferenceFixture.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IOException("test resource " + resource + " is missing; run model/src/test/python/make_gpt_reference.py");
            }
            return in.readAllBytes();
        }
    }

    private static String text(String resource) throws IOException {
        return new String(bytes(resource), StandardCharsets.UTF_8);
    }
}
