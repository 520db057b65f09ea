package org.megatronj.io.gpt;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Writes a value exactly as Python's {@code json.dumps(value, indent=4)} does, because Megatron
 * hashes that text (MD5) to name its index cache files. Values: {@link Map} (insertion order, string
 * keys), {@link List}, {@link String}, {@link Integer}/{@link Long}, {@link Double} (Python's
 * {@code float.__repr__}), {@link Boolean} and null. Strings are escaped as with {@code ensure_ascii=True}.
 */
public final class PythonJson {
    private static final String INDENT = "    ";

    private PythonJson() {
    }

    public static String dumps(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value, 0);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value, int level) {
        switch (value) {
            case null -> out.append("null");
            case String s -> quote(out, s);
            case Boolean b -> out.append(b ? "true" : "false");
            case Integer i -> out.append(i);
            case Long l -> out.append(l);
            case Double d -> out.append(floatRepr(d));
            case Map<?, ?> map -> writeMap(out, map, level);
            case List<?> list -> writeList(out, list, level);
            default -> throw new IllegalArgumentException("cannot write " + value.getClass().getName() + " as Python JSON");
        }
    }

    private static void writeMap(StringBuilder out, Map<?, ?> map, int level) {
        if (map.isEmpty()) {
            out.append("{}");
            return;
        }
        out.append("{\n");
        Iterator<? extends Map.Entry<?, ?>> it = map.entrySet().iterator();
        while (it.hasNext()) {
            Map.Entry<?, ?> e = it.next();
            out.repeat(INDENT, level + 1);
            quote(out, (String) e.getKey());
            out.append(": ");
            write(out, e.getValue(), level + 1);
            out.append(it.hasNext() ? ",\n" : "\n");
        }
        out.repeat(INDENT, level).append('}');
    }

    private static void writeList(StringBuilder out, List<?> list, int level) {
        if (list.isEmpty()) {
            out.append("[]");
            return;
        }
        out.append("[\n");
        for (int i = 0; i < list.size(); i++) {
            out.repeat(INDENT, level + 1);
            write(out, list.get(i), level + 1);
            out.append(i + 1 < list.size() ? ",\n" : "\n");
        }
        out.repeat(INDENT, level).append(']');
    }

    private static void quote(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /**
     * The shortest decimal that reads back as {@code x} (x > 0), the closest one among equally short
     * ones. {@link Double#toString} gives that, except that it never goes below two significant
     * digits: when one digit would do, pick the closest one-digit decimal that round-trips.
     */
    private static BigDecimal shortestDecimal(double x) {
        BigDecimal fromJava = new BigDecimal(Double.toString(x)).stripTrailingZeros();
        if (fromJava.precision() != 2) {
            return fromJava;
        }
        BigDecimal exact = new BigDecimal(x);
        BigDecimal best = null;
        for (RoundingMode mode : new RoundingMode[] {RoundingMode.FLOOR, RoundingMode.CEILING}) {
            BigDecimal candidate = fromJava.round(new MathContext(1, mode));
            if (candidate.signum() > 0 && candidate.doubleValue() == x) {
                if (best == null || candidate.subtract(exact).abs().compareTo(best.subtract(exact).abs()) < 0) {
                    best = candidate;
                }
            }
        }
        return best == null ? fromJava : best.stripTrailingZeros();
    }

    /**
     * Python's {@code repr(float)}: the shortest digits that round-trip (Java's {@link Double#toString}
     * finds the same digits since JDK 19), laid out as Python does — positional with at least one
     * decimal when {@code 1e-4 <= |x| < 1e16}, otherwise {@code d.ddde-05} / {@code 1e+16}.
     * JSON writes infinities and NaN as {@code Infinity}, {@code -Infinity}, {@code NaN}.
     */
    public static String floatRepr(double x) {
        if (Double.isNaN(x)) {
            return "NaN";
        }
        if (Double.isInfinite(x)) {
            return x > 0 ? "Infinity" : "-Infinity";
        }
        if (x == 0) {
            return (1 / x < 0) ? "-0.0" : "0.0";
        }
        BigDecimal shortest = shortestDecimal(Math.abs(x));
        String digits = shortest.unscaledValue().toString();
        // value = 0.<digits> * 10^decpt
        int decpt = digits.length() - shortest.scale();
        StringBuilder out = new StringBuilder(x < 0 ? "-" : "");
        if (decpt > -4 && decpt <= 16) {
            if (decpt <= 0) {
                out.append("0.").repeat('0', -decpt).append(digits);
            } else if (decpt >= digits.length()) {
                out.append(digits).repeat('0', decpt - digits.length()).append(".0");
            } else {
                out.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
            }
        } else {
            out.append(digits.charAt(0));
            if (digits.length() > 1) {
                out.append('.').append(digits, 1, digits.length());
            }
            int exponent = decpt - 1;
            out.append(exponent < 0 ? "e-" : "e+");
            int abs = Math.abs(exponent);
            if (abs < 10) {
                out.append('0');
            }
            out.append(abs);
        }
        return out.toString();
    }
}
