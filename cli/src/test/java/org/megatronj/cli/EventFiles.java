package org.megatronj.cli;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/** Reads the scalars of a TensorBoard event file back (TFRecords of Event protocol buffers), for tests. */
final class EventFiles {
    private EventFiles() {
    }

    /** tag -> step -> value of every {@code Summary.Value.simple_value} in the file. */
    static Map<String, TreeMap<Long, Float>> scalars(Path file) throws IOException {
        ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        Map<String, TreeMap<Long, Float>> out = new HashMap<>();
        while (in.hasRemaining()) {
            int length = (int) in.getLong();
            in.getInt();                                  // the length's CRC
            ByteBuffer event = in.slice(in.position(), length).order(ByteOrder.LITTLE_ENDIAN);
            in.position(in.position() + length + 4);      // the data's CRC
            long step = 0;
            ByteBuffer summary = null;
            while (event.hasRemaining()) {
                long key = varint(event);
                switch ((int) key) {
                    case (1 << 3) | 1 -> event.getLong();                    // wall_time
                    case (2 << 3) -> step = varint(event);                   // step
                    case (5 << 3) | 2 -> summary = bytes(event);             // summary
                    default -> skip(event, (int) (key & 7));
                }
            }
            while (summary != null && summary.hasRemaining()) {
                long key = varint(summary);
                ByteBuffer value = bytes(summary);
                String tag = null;
                float simple = Float.NaN;
                while (key == ((1 << 3) | 2) && value.hasRemaining()) {
                    long k = varint(value);
                    if (k == ((1 << 3) | 2)) {
                        ByteBuffer t = bytes(value);
                        byte[] b = new byte[t.remaining()];
                        t.get(b);
                        tag = new String(b, StandardCharsets.UTF_8);
                    } else if (k == ((2 << 3) | 5)) {
                        simple = value.getFloat();
                    } else {
                        skip(value, (int) (k & 7));
                    }
                }
                out.computeIfAbsent(tag, t -> new TreeMap<>()).put(step, simple);
            }
        }
        return out;
    }

    private static long varint(ByteBuffer b) {
        long v = 0;
        for (int shift = 0; ; shift += 7) {
            int x = b.get() & 0xFF;
            v |= (long) (x & 0x7F) << shift;
            if (x < 0x80) {
                return v;
            }
        }
    }

    private static ByteBuffer bytes(ByteBuffer b) {
        int n = (int) varint(b);
        ByteBuffer slice = b.slice(b.position(), n).order(ByteOrder.LITTLE_ENDIAN);
        b.position(b.position() + n);
        return slice;
    }

    private static void skip(ByteBuffer b, int wireType) {
        switch (wireType) {
            case 0 -> varint(b);
            case 1 -> b.getLong();
            case 2 -> bytes(b);
            case 5 -> b.getInt();
            default -> throw new IllegalStateException("wire type " + wireType);
        }
    }
}
