package org.megatronj.model;

import java.util.Arrays;
import java.util.List;

/** An enum constant spelled on the command line as {@link #flagValue()} (Megatron's spelling of the choice). */
public interface FlagValue {
    String flagValue();

    /**
     * The constant of {@code type} that {@code value} spells (case aside), else an error naming {@code flag} and
     * the choices: {@code unknown --flag 'x': expected a, b or c}.
     */
    static <E extends Enum<E> & FlagValue> E parse(Class<E> type, String flag, String value) {
        for (E e : type.getEnumConstants()) {
            if (e.flagValue().equalsIgnoreCase(value.trim())) {
                return e;
            }
        }
        List<String> choices = Arrays.stream(type.getEnumConstants()).map(FlagValue::flagValue).toList();
        String expected = choices.size() == 1 ? choices.getFirst()
                : String.join(", ", choices.subList(0, choices.size() - 1)) + " or " + choices.getLast();
        throw new IllegalArgumentException("unknown " + flag + " '" + value + "': expected " + expected);
    }
}
