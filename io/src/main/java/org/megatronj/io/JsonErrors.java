package org.megatronj.io;

import com.fasterxml.jackson.core.JsonProcessingException;

/** Jackson's parse errors in one line: its message without the "[Source: REDACTED ...]" tail, and the position. */
public final class JsonErrors {
    private JsonErrors() {
    }

    /** For example {@code Unexpected character ('x' (code 120)) ... at line 3, column 7}. */
    public static String describe(JsonProcessingException e) {
        var loc = e.getLocation();
        return e.getOriginalMessage() + (loc == null ? "" : " at line " + loc.getLineNr() + ", column " + loc.getColumnNr());
    }
}
