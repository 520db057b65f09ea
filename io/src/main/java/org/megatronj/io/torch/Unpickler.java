package org.megatronj.io.torch;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * Reads a Python pickle (protocols 0 to 5, as {@code torch.save} writes its {@code data.pkl}) into plain Java values
 * without running anything: {@code None} is null, ints are Long (BigInteger beyond), floats Double, str String,
 * bytes byte[], lists and tuples List (tuples unmodifiable), dicts and {@code OrderedDict}s LinkedHashMap. A class or
 * function reference is a {@link Global}; calling one (REDUCE, NEWOBJ) builds an {@link Instance} holding the call's
 * arguments and, once BUILD runs, its state, unless {@code reducers} knows the callable (e.g. torch's tensor rebuild).
 * Persistent ids (torch's storages) go to {@code persistentLoad}.
 */
public final class Unpickler {

    /** A module-level name: {@code module.name}. */
    public record Global(String module, String name) {
        @Override
        public String toString() {
            return module + "." + name;
        }
    }

    /** An object of a class we do not model: how it was made and the state BUILD gave it. */
    public static final class Instance {
        private final Global type;
        private final List<Object> args;
        private Object state;

        Instance(Global type, List<Object> args) {
            this.type = type;
            this.args = args;
        }

        public Global type() {
            return type;
        }

        public List<Object> args() {
            return args;
        }

        /** BUILD's argument: usually the instance's {@code __dict__}, null when none was given. */
        public Object state() {
            return state;
        }

        @Override
        public String toString() {
            return type + args.toString() + (state == null ? "" : " " + state);
        }
    }

    private static final Object MARK = new Object();

    private final ByteBuffer in;
    private final String source;
    private final Map<Global, Function<List<Object>, Object>> reducers;
    private final Function<Object, Object> persistentLoad;
    private final List<Object> stack = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();

    /**
     * @param source         names the pickle in errors
     * @param reducers       callables to apply rather than record (their arguments as a list)
     * @param persistentLoad the object of a persistent id, or null when the pickle should have none
     */
    public Unpickler(byte[] data, String source, Map<Global, Function<List<Object>, Object>> reducers,
                     Function<Object, Object> persistentLoad) {
        this.in = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        this.source = source;
        this.reducers = reducers;
        this.persistentLoad = persistentLoad;
    }

    /** The pickled object. */
    public Object load() {
        try {
            while (true) {
                int at = in.position();
                int op = in.get() & 0xff;
                if (op == '.') {
                    return pop();
                }
                run(op, at);
            }
        } catch (java.nio.BufferUnderflowException e) {
            throw new IllegalArgumentException(source + ": the pickle ends before its STOP opcode (truncated file?)");
        }
    }

    private void run(int op, int at) {
        switch (op) {
            case 0x80 -> checkProtocol(in.get() & 0xff);                                  // PROTO
            case 0x95 -> in.getLong();                                                    // FRAME: a length hint
            case '(' -> stack.add(MARK);
            case ')' -> push(List.of());
            case ']', 'l' -> push(op == ']' ? new ArrayList<>() : new ArrayList<>(popMark()));
            case '}' -> push(new LinkedHashMap<>());
            case 'd' -> push(dictOf(popMark()));
            case 't' -> push(Collections.unmodifiableList(new ArrayList<>(popMark())));
            case 0x85 -> push(tuple(1));
            case 0x86 -> push(tuple(2));
            case 0x87 -> push(tuple(3));
            case 'N' -> push(null);
            case 0x88 -> push(Boolean.TRUE);
            case 0x89 -> push(Boolean.FALSE);
            case 'K' -> push((long) (in.get() & 0xff));                                  // BININT1
            case 'M' -> push((long) (in.getShort() & 0xffff));                           // BININT2
            case 'J' -> push((long) in.getInt());                                        // BININT
            case 0x8a -> push(longOf(bytes(in.get() & 0xff)));                           // LONG1
            case 0x8b -> push(longOf(bytes(in.getInt())));                               // LONG4
            case 'I' -> push(textInt(line()));
            case 'L' -> push(textLong(line()));
            case 'G' -> push(ByteBuffer.wrap(bytes(8)).getDouble());                     // BINFLOAT, big-endian
            case 'F' -> push(Double.parseDouble(line()));
            case 'X' -> push(utf8(in.getInt()));                                         // BINUNICODE
            case 0x8c -> push(utf8(in.get() & 0xff));                                    // SHORT_BINUNICODE
            case 0x8d -> push(utf8(Math.toIntExact(in.getLong())));                      // BINUNICODE8
            case 'V' -> push(line());                                                    // UNICODE (raw-unicode-escape)
            case 'U' -> push(latin1(in.get() & 0xff));                                   // SHORT_BINSTRING
            case 'T' -> push(latin1(in.getInt()));                                       // BINSTRING
            case 'C' -> push(bytes(in.get() & 0xff));                                    // SHORT_BINBYTES
            case 'B' -> push(bytes(in.getInt()));                                        // BINBYTES
            case 0x8e -> push(bytes(Math.toIntExact(in.getLong())));                     // BINBYTES8
            case 0x96 -> push(bytes(Math.toIntExact(in.getLong())));                     // BYTEARRAY8
            case 'a' -> {
                Object item = pop();
                appendTo(peek(), Collections.singletonList(item));
            }
            case 'e' -> {
                List<Object> items = popMark();
                appendTo(peek(), items);
            }
            case 's' -> {
                Object value = pop();
                Object key = pop();
                peekDict().put(key, value);
            }
            case 'u' -> {
                List<Object> items = popMark();
                Map<Object, Object> dict = peekDict();
                for (int i = 0; i + 1 < items.size(); i += 2) {
                    dict.put(items.get(i), items.get(i + 1));
                }
            }
            case 0x8f -> push(new ArrayList<>());                                        // EMPTY_SET, as a list
            case 0x90 -> {                                                              // ADDITEMS
                List<Object> items = popMark();
                appendTo(peek(), items);
            }
            case 0x91 -> push(Collections.unmodifiableList(new ArrayList<>(popMark()))); // FROZENSET
            case 'q' -> memo.put((long) (in.get() & 0xff), peek());                      // BINPUT
            case 'r' -> memo.put(in.getInt() & 0xffffffffL, peek());                     // LONG_BINPUT
            case 'p' -> memo.put(Long.parseLong(line()), peek());                        // PUT
            case 0x94 -> memo.put((long) memo.size(), peek());                           // MEMOIZE
            case 'h' -> push(memoGet(in.get() & 0xff, at));                             // BINGET
            case 'j' -> push(memoGet(in.getInt() & 0xffffffffL, at));                   // LONG_BINGET
            case 'g' -> push(memoGet(Long.parseLong(line()), at));                      // GET
            case 'c' -> push(new Global(line(), line()));                               // GLOBAL
            case 0x93 -> {                                                              // STACK_GLOBAL
                String name = (String) pop();
                push(new Global((String) pop(), name));
            }
            case 'R' -> {                                                               // REDUCE
                List<Object> args = asList(pop(), at);
                push(call(pop(), args, at));
            }
            case 0x81 -> {                                                              // NEWOBJ
                List<Object> args = asList(pop(), at);
                push(call(pop(), args, at));
            }
            case 0x92 -> {                                                              // NEWOBJ_EX: kwargs dropped
                pop();
                List<Object> args = asList(pop(), at);
                push(call(pop(), args, at));
            }
            case 'b' -> build(pop(), peek());                                           // BUILD
            case 'Q' -> push(persistent(pop(), at));                                    // BINPERSID
            case 'P' -> push(persistent(line(), at));                                   // PERSID
            case '0' -> pop();                                                          // POP
            case '1' -> popMark();                                                      // POP_MARK
            case '2' -> push(peek());                                                   // DUP
            default -> throw new IllegalArgumentException(String.format("%s: pickle opcode 0x%02x at byte %d is not"
                    + " supported", source, op, at));
        }
    }

    private void checkProtocol(int protocol) {
        if (protocol > 5) {
            throw new IllegalArgumentException(source + ": pickle protocol " + protocol + " is newer than 5");
        }
    }

    private Object call(Object callable, List<Object> args, int at) {
        if (!(callable instanceof Global g)) {
            throw new IllegalArgumentException(source + ": byte " + at + " calls " + callable + ", not a module-level name");
        }
        Function<List<Object>, Object> reducer = reducers.get(g);
        if (reducer != null) {
            return reducer.apply(args);
        }
        if (g.module().equals("collections") && g.name().equals("OrderedDict")) {
            return new LinkedHashMap<>();
        }
        return new Instance(g, args);
    }

    @SuppressWarnings("unchecked")
    private static void build(Object state, Object target) {
        if (target instanceof Instance i) {
            i.state = state;
        } else if (target instanceof Map<?, ?> m && state instanceof Map<?, ?> s) {
            ((Map<Object, Object>) m).putAll(s);
        }
        // other targets (a tensor rebuilt by torch, a list): their state is of no use here
    }

    private Object persistent(Object pid, int at) {
        if (persistentLoad == null) {
            throw new IllegalArgumentException(source + ": byte " + at + " has a persistent id " + pid
                    + " where none is expected");
        }
        return persistentLoad.apply(pid);
    }

    private Object memoGet(long key, int at) {
        if (!memo.containsKey(key)) {
            throw new IllegalArgumentException(source + ": byte " + at + " reads memo entry " + key + ", never stored");
        }
        return memo.get(key);
    }

    private List<Object> tuple(int n) {
        Object[] items = new Object[n];
        for (int i = n - 1; i >= 0; i--) {
            items[i] = pop();
        }
        return Collections.unmodifiableList(Arrays.asList(items));
    }

    private static Map<Object, Object> dictOf(List<Object> items) {
        Map<Object, Object> dict = new LinkedHashMap<>();
        for (int i = 0; i + 1 < items.size(); i += 2) {
            dict.put(items.get(i), items.get(i + 1));
        }
        return dict;
    }

    @SuppressWarnings("unchecked")
    private void appendTo(Object target, List<Object> items) {
        if (target instanceof List<?> list) {
            ((List<Object>) list).addAll(items);
        } else if (target instanceof Instance i) {   // a list subclass: keep the items as its state
            i.state = i.state == null ? new ArrayList<>(items) : i.state;
        } else {
            throw new IllegalArgumentException(source + ": APPEND to " + target + ", not a list");
        }
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> peekDict() {
        Object top = peek();
        if (top instanceof Map<?, ?> m) {
            return (Map<Object, Object>) m;
        }
        if (top instanceof Instance i) {   // a dict subclass (e.g. a Namespace-like mapping): its items become its state
            if (!(i.state instanceof Map<?, ?>)) {
                i.state = new LinkedHashMap<>();
            }
            return (Map<Object, Object>) i.state;
        }
        throw new IllegalArgumentException(source + ": SETITEM on " + top + ", not a dict");
    }

    private List<Object> asList(Object args, int at) {
        if (args instanceof List<?> l) {
            return new ArrayList<>(l);
        }
        throw new IllegalArgumentException(source + ": byte " + at + " calls with " + args + ", not a tuple");
    }

    private void push(Object o) {
        stack.add(o);
    }

    private Object pop() {
        if (stack.isEmpty()) {
            throw new IllegalArgumentException(source + ": pickle stack underflow at byte " + in.position());
        }
        Object o = stack.removeLast();
        if (o == MARK) {
            throw new IllegalArgumentException(source + ": pickle pops a MARK at byte " + in.position());
        }
        return o;
    }

    private Object peek() {
        if (stack.isEmpty()) {
            throw new IllegalArgumentException(source + ": pickle stack empty at byte " + in.position());
        }
        return stack.getLast();
    }

    private List<Object> popMark() {
        int mark = stack.lastIndexOf(MARK);
        if (mark < 0) {
            throw new IllegalArgumentException(source + ": pickle has no MARK before byte " + in.position());
        }
        List<Object> items = new ArrayList<>(stack.subList(mark + 1, stack.size()));
        stack.subList(mark, stack.size()).clear();
        return items;
    }

    private byte[] bytes(int n) {
        if (n < 0 || n > in.remaining()) {
            throw new IllegalArgumentException(source + ": a " + n + "-byte value at byte " + in.position()
                    + " runs past the pickle's end");
        }
        byte[] b = new byte[n];
        in.get(b);
        return b;
    }

    private String utf8(int n) {
        return new String(bytes(n), StandardCharsets.UTF_8);
    }

    private String latin1(int n) {
        return new String(bytes(n), StandardCharsets.ISO_8859_1);
    }

    private String line() {
        int start = in.position();
        while (in.get() != '\n') {
            // scan to the newline
        }
        byte[] b = Arrays.copyOfRange(in.array(), start, in.position() - 1);
        return new String(b, StandardCharsets.UTF_8);
    }

    /** LONG1/LONG4: little-endian two's complement. */
    private static Object longOf(byte[] le) {
        if (le.length == 0) {
            return 0L;
        }
        byte[] be = new byte[le.length];
        for (int i = 0; i < le.length; i++) {
            be[i] = le[le.length - 1 - i];
        }
        BigInteger v = new BigInteger(be);
        return v.bitLength() < 64 ? (Object) v.longValue() : v;
    }

    private static Object textInt(String s) {
        return switch (s) {
            case "00" -> Boolean.FALSE;
            case "01" -> Boolean.TRUE;
            default -> Long.parseLong(s);
        };
    }

    private static Object textLong(String s) {
        BigInteger v = new BigInteger(s.endsWith("L") ? s.substring(0, s.length() - 1) : s);
        return v.bitLength() < 64 ? (Object) v.longValue() : v;
    }
}
