package org.megatronj.io;

import java.util.regex.Pattern;

import com.fasterxml.jackson.core.JsonProcessingException;

/** Jackson's parse errors in one line: its message without the "[Source: REDACTED ...]" tail, and the position. */
public final class JsonErrors {
    /** How Jackson quotes a location inside its own message, e.g. in "(start marker at [Source: REDACTED ...; line: 1, column: 1])". */
    private static final Pattern QUOTED_LOCATION = Pattern.compile("\\[Source: [^\\]]*?line: (\\d+), column: (\\d+)\\]");

    private JsonErrors() {
    }

    /** For example {@code Unexpected character ('x' (code 120)) ... at line 3, column 7}. */
    public static String describe(JsonProcessingException e) {
        var loc = e.getLocation();
        return message(e) + (loc == null ? "" : " at line " + loc.getLineNr() + ", column " + loc.getColumnNr());
    }

    /**
     * Jackson's own text without the position it appends; a location it quotes inside the text (the
     * start of an unclosed object) reads "line L, column C", since the source is never shown.
     */
    public static String message(JsonProcessingException e) {
        String m = e.getOriginalMessage();
        return m == null ? e.getClass().getSimpleName() : QUOTED_LOCATION.matcher(m).replaceAll("line $1, column $2");
    }
}
