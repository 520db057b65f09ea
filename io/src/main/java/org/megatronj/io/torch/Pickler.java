package org.megatronj.io.torch;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * Writes plain values as a pickle of protocol 2 (what {@code torch.save} writes): null, Boolean, Long/Integer,
 * Double/Float, String, byte[] (as Python 3 bytes), List (a list), {@link Tuple}, Map (a dict, or with
 * {@link OrderedDict} an {@code OrderedDict}), {@link Unpickler.Global} (a class or function reference),
 * {@link NewObject} (an instance of a plain class with its {@code __dict__}, as {@code argparse.Namespace}),
 * {@link Call} (a callable applied to arguments) and {@link PersistentId}. No memo: shared objects are written
 * twice, which plain data does not notice.
 */
public final class Pickler {
    /** A Python tuple. */
    public record Tuple(List<Object> items) {
    }

    /** A {@code collections.OrderedDict} of these entries. */
    public record OrderedDict(Map<?, ?> entries) {
    }

    /** {@code cls.__new__(cls)} with {@code state} as its {@code __dict__}. */
    public record NewObject(Unpickler.Global cls, Map<String, ?> state) {
    }

    /** {@code callable(*args)}. */
    public record Call(Unpickler.Global callable, List<Object> args) {
    }

    /** A persistent id (torch's storage reference), resolved by the reader's {@code persistent_load}. */
    public record PersistentId(Tuple id) {
    }

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    private Pickler() {
    }

    /** The pickle of {@code value}. */
    public static byte[] dumps(Object value) {
        Pickler p = new Pickler();
        p.out.write(0x80);
        p.out.write(2);
        p.write(value);
        p.out.write('.');
        return p.out.toByteArray();
    }

    private void write(Object v) {
        switch (v) {
            case null -> out.write('N');
            case Boolean b -> out.write(b ? 0x88 : 0x89);
            case Integer i -> writeLong(i);
            case Long l -> writeLong(l);
            case Float f -> writeDouble(f);
            case Double d -> writeDouble(d);
            case String s -> {
                byte[] b = s.getBytes(StandardCharsets.UTF_8);
                out.write('X');
                writeInt(b.length);
                out.writeBytes(b);
            }
            case byte[] b -> write(new Call(new Unpickler.Global("_codecs", "encode"),     // protocol 2's bytes
                    List.of(new String(b, StandardCharsets.ISO_8859_1), "latin1")));
            case Tuple t -> writeTuple(t.items());
            case List<?> l -> {
                out.write(']');
                if (!l.isEmpty()) {
                    out.write('(');
                    l.forEach(this::write);
                    out.write('e');
                }
            }
            case OrderedDict d -> {
                write(new Call(new Unpickler.Global("collections", "OrderedDict"), List.of()));
                writeItems(d.entries());
            }
            case Map<?, ?> m -> {
                out.write('}');
                writeItems(m);
            }
            case Unpickler.Global g -> {
                out.write('c');
                out.writeBytes((g.module() + "\n" + g.name() + "\n").getBytes(StandardCharsets.UTF_8));
            }
            case NewObject o -> {
                write(o.cls());
                out.write(')');
                out.write(0x81);   // NEWOBJ
                write(o.state());
                out.write('b');    // BUILD
            }
            case Call c -> {
                write(c.callable());
                writeTuple(c.args());
                out.write('R');
            }
            case PersistentId p -> {
                writeTuple(p.id().items());
                out.write('Q');
            }
            default -> throw new IllegalArgumentException("cannot pickle a " + v.getClass().getName() + ": " + v);
        }
    }

    private void writeItems(Map<?, ?> m) {
        if (m.isEmpty()) {
            return;
        }
        out.write('(');
        m.forEach((k, val) -> {
            write(k);
            write(val);
        });
        out.write('u');
    }

    private void writeTuple(List<Object> items) {
        switch (items.size()) {
            case 0 -> out.write(')');
            case 1, 2, 3 -> {
                items.forEach(this::write);
                out.write(0x84 + items.size());   // TUPLE1..3
            }
            default -> {
                out.write('(');
                items.forEach(this::write);
                out.write('t');
            }
        }
    }

    private void writeLong(long v) {
        if (v >= 0 && v < 256) {
            out.write('K');
            out.write((int) v);
        } else if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            out.write('J');
            writeInt((int) v);
        } else {
            out.write(0x8a);   // LONG1, 8 bytes little-endian two's complement
            out.write(8);
            out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
        }
    }

    private void writeDouble(double d) {
        out.write('G');
        out.writeBytes(ByteBuffer.allocate(8).putDouble(d).array());   // big-endian
    }

    private void writeInt(int v) {
        out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
    }
}
