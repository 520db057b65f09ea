package org.megatronj.io.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * A SentencePiece normalizer spec's {@code precompiled_charsmap} ({@code nmt_nfkc}, T5's, most Unigram models): a
 * little-endian uint32 byte size of a darts-clone double-array trie, the trie's uint32 units, then the replacement
 * strings, each UTF-8 and NUL-terminated. The trie's keys are UTF-8 character sequences and its values offsets of
 * their replacements, as the library's {@code Builder::CompileCharsMap} writes them.
 */
final class PrecompiledCharsMap {
    private final String source;
    private final int[] units;
    private final byte[] strings;

    private PrecompiledCharsMap(String source, int[] units, byte[] strings) {
        this.source = source;
        this.units = units;
        this.strings = strings;
    }

    /** Reads the blob, failing with what is wrong with it where it cannot hold a trie and its strings. */
    static PrecompiledCharsMap parse(byte[] blob, String source) {
        String what = source + ": precompiled_charsmap of " + blob.length + " bytes";
        if (blob.length <= 4) {
            throw new TokenizerException(what + " is too short for its 4-byte trie size and a trie");
        }
        long trieBytes = Integer.toUnsignedLong(littleEndian(blob, 0));
        if (trieBytes > blob.length - 4) {
            throw new TokenizerException(what + " declares a " + trieBytes + "-byte trie");
        }
        if (trieBytes == 0 || trieBytes % 4 != 0) {
            throw new TokenizerException(what + " declares a " + trieBytes + "-byte trie, not a whole number of 4-byte units");
        }
        int[] units = new int[(int) trieBytes / 4];
        for (int i = 0; i < units.length; i++) {
            units[i] = littleEndian(blob, 4 + 4 * i);
        }
        byte[] strings = java.util.Arrays.copyOfRange(blob, 4 + (int) trieBytes, blob.length);
        // so that every offset inside the buffer has a terminator after it
        if (strings.length > 0 && strings[strings.length - 1] != 0) {
            throw new TokenizerException(what + ": its normalized strings do not end in a NUL");
        }
        return new PrecompiledCharsMap(source, units, strings);
    }

    private static int littleEndian(byte[] b, int at) {
        return (b[at] & 0xFF) | (b[at + 1] & 0xFF) << 8 | (b[at + 2] & 0xFF) << 16 | (b[at + 3] & 0xFF) << 24;
    }

    /**
     * The replacement of the longest key that {@code text} holds at {@code from} (darts-clone's common-prefix search
     * over the text's UTF-8), with the key's end, a char index, in {@code end[0]}; null when no key matches there.
     */
    String longestMatch(String text, int from, int[] end) {
        int node = offset(unit(0));
        int value = -1;
        for (int i = from; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int length = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            int unit = 0;
            for (int k = 0; k < length; k++) {
                int b = utf8Byte(cp, length, k);
                node ^= b;
                unit = unit(node);
                if (label(unit) != b) {
                    return value < 0 ? null : string(value);
                }
                node ^= offset(unit);
            }
            i += Character.charCount(cp);
            // keys are whole characters (the builder checks they are valid UTF-8), so leaves end only here
            if (hasLeaf(unit)) {
                value = unit(node) & 0x7FFFFFFF;
                end[0] = i;
            }
        }
        return value < 0 ? null : string(value);
    }

    /** Byte {@code k} of the {@code length}-byte UTF-8 of {@code cp}. */
    private static int utf8Byte(int cp, int length, int k) {
        if (k > 0) {
            return 0x80 | (cp >> 6 * (length - 1 - k)) & 0x3F;
        }
        return switch (length) {
            case 1 -> cp;
            case 2 -> 0xC0 | cp >> 6;
            case 3 -> 0xE0 | cp >> 12;
            default -> 0xF0 | cp >> 18;
        };
    }

    private int unit(int node) {
        if (node < 0 || node >= units.length) {
            throw new TokenizerException(source + ": precompiled_charsmap is corrupt: its trie leads to unit " + node
                    + " of " + units.length);
        }
        return units[node];
    }

    /** A leaf's label has its top bit set, so that it never equals a byte. */
    private static int label(int unit) {
        return unit & (1 << 31 | 0xFF);
    }

    private static int offset(int unit) {
        return (unit >>> 10) << ((unit & 1 << 9) >>> 6);
    }

    private static boolean hasLeaf(int unit) {
        return (unit >>> 8 & 1) == 1;
    }

    /** The NUL-terminated replacement at {@code offset}. */
    private String string(int offset) {
        if (offset >= strings.length) {
            throw new TokenizerException(source + ": precompiled_charsmap is corrupt: a trie value points at byte " + offset
                    + " of its " + strings.length + " bytes of normalized strings");
        }
        int nul = offset;
        while (strings[nul] != 0) nul++;
        return new String(strings, offset, nul - offset, StandardCharsets.UTF_8);
    }
}
