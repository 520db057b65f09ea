package org.megatronj.io.tokenizer;

/**
 * Megatron's {@code NullTokenizer}: the text already is token ids separated by single spaces
 * ({@code "17 4 1023"}). Two generations of it count {@code --vocab-size} differently:
 * <ul>
 *   <li>today's (core_v0.18 on): the vocabulary is {@code --vocab-size} exactly, EOD is its last id
 *       unless {@code --null-tokenizer-eod-id} says otherwise, and {@code --null-tokenizer-pad-id}
 *       names a pad id (default -1, none);</li>
 *   <li>the legacy one ({@code --legacy-tokenizer}, and core up to v0.17): EOD is {@code --vocab-size}
 *       itself, appended, so the vocabulary has {@code vocab-size + 1} entries and no pad.</li>
 * </ul>
 * The difference shows in the padded vocabulary: {@code --vocab-size 50304} stays 50304 today but
 * pads 50305 up to 50432 in the legacy form.
 */
public final class NullTokenizer implements Tokenizer {
    private final int vocabSize;
    private final int eod;
    private final int pad;

    private NullTokenizer(int vocabSize, int eod, int pad) {
        this.vocabSize = vocabSize;
        this.eod = eod;
        this.pad = pad;
    }

    /**
     * Which NullTokenizer {@code --vocab-size} builds: today's, with its EOD ({@code null}: the last id) and pad
     * ({@code -1}: none) ids, or the legacy one.
     */
    public record Form(boolean legacy, Integer eodId, int padId) {
        public static final Form TODAY = new Form(false, null, -1);
        public static final Form LEGACY = new Form(true, null, -1);

        public Form {
            if (legacy && (eodId != null || padId != -1)) {
                throw new IllegalArgumentException("--null-tokenizer-eod-id and --null-tokenizer-pad-id apply to today's"
                        + " NullTokenizer; the legacy one (--legacy-tokenizer, --cache-compat LEGACY, CORE_V0_15 or CORE_V0_16)"
                        + " has EOD = --vocab-size and no pad");
            }
        }

        public NullTokenizer create(int vocabSize) {
            if (vocabSize <= 0) {
                throw new IllegalArgumentException("NullTokenizer needs --vocab-size > 0, got " + vocabSize);
            }
            if (legacy) {
                return new NullTokenizer(vocabSize + 1, vocabSize, -1);
            }
            int eod = eodId != null ? eodId : vocabSize - 1;
            if (eod < 0 || eod >= vocabSize) {
                throw new IllegalArgumentException("--null-tokenizer-eod-id " + eod + " is outside the vocabulary 0.."
                        + (vocabSize - 1) + " (--vocab-size " + vocabSize + ")");
            }
            if (padId < -1 || padId >= vocabSize) {
                throw new IllegalArgumentException("--null-tokenizer-pad-id " + padId + " is outside the vocabulary 0.."
                        + (vocabSize - 1) + " (--vocab-size " + vocabSize + "); -1 means no pad token");
            }
            return new NullTokenizer(vocabSize, eod, padId);
        }
    }

    @Override
    public String typeName() {
        return "NullTokenizer";
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public int eod() {
        return eod;
    }

    @Override
    public int pad() {
        if (pad < 0) {
            throw new UnsupportedOperationException("NullTokenizer has no pad token (--null-tokenizer-pad-id names one)");
        }
        return pad;
    }

    /** Parses {@code text.split(' ')} as integers, as Megatron does (so an empty text or a double space is an error there too). */
    @Override
    public int[] tokenize(String text) {
        IntList ids = new IntList(text.length() / 3 + 1);
        int start = 0;
        while (true) {
            int end = text.indexOf(' ', start);
            String part = (end < 0 ? text.substring(start) : text.substring(start, end)).strip();
            int id;
            try {
                id = Integer.parseInt(part);
            } catch (NumberFormatException e) {
                throw new TokenizerException("NullTokenizer expects token ids separated by single spaces; '" + part
                        + "' at char " + start + " is not an integer");
            }
            if (id < 0 || id >= vocabSize) {
                throw new TokenizerException("NullTokenizer: token id " + id + " at char " + start + " is outside the vocabulary 0.."
                        + (vocabSize - 1) + " (EOD = " + eod + ")");
            }
            ids.add(id);
            if (end < 0) break;
            start = end + 1;
        }
        return ids.toArray();
    }

    @Override
    public String detokenize(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; i++) {
            if (i > 0) sb.append(' ');
            sb.append(ids[i]);
        }
        return sb.toString();
    }
}
