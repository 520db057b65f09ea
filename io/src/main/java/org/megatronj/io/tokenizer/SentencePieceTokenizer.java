package org.megatronj.io.tokenizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Megatron's three tokenizers over a SentencePiece {@code tokenizer.model} ({@code --tokenizer-model}), as its
 * {@code megatron.training.tokenizer} defines them:
 * <ul>
 *   <li>{@code SentencePieceTokenizer}: the model's pieces plus special tokens {@code <CLS> <SEP> <EOD> <MASK>}, the
 *       pad/bos/eos pieces ({@code <PAD>}, ... where the model has none) and {@code --vocab-extra-ids} sentinels,
 *       each appended when the model lacks it; a special token in the text is cut out as its id (the earliest one
 *       first); EOD is {@code <EOD>}.</li>
 *   <li>{@code GPTSentencePieceTokenizer}: the model alone; EOD is its {@code </s>}.</li>
 *   <li>{@code Llama2Tokenizer}: the model alone with {@code <s>} before every text; EOD is {@code </s>}.</li>
 * </ul>
 */
public final class SentencePieceTokenizer implements AppendingTokenizer {
    /** Which of Megatron's tokenizers. */
    public enum Flavor { SENTENCE_PIECE, GPT_SENTENCE_PIECE, LLAMA2 }

    private final Flavor flavor;
    private final SentencePieceModel model;
    /** SENTENCE_PIECE's special tokens in Megatron's order (its tie-break when two start at the same place). */
    private final Map<String, Integer> special = new LinkedHashMap<>();
    private final Map<Integer, String> specialById = new LinkedHashMap<>();
    private final List<Integer> extraIds = new ArrayList<>();
    private final int vocabSize;

    private SentencePieceTokenizer(Flavor flavor, SentencePieceModel model, int vocabExtraIds) {
        this.flavor = flavor;
        this.model = model;
        if (flavor != Flavor.SENTENCE_PIECE) {
            this.vocabSize = model.size();
            return;
        }
        Map<String, Integer> vocab = new LinkedHashMap<>();
        for (int i = 0; i < model.size(); i++) {
            vocab.put(model.piece(i), i);
        }
        for (String t : List.of("<CLS>", "<SEP>", "<EOD>", "<MASK>")) {
            addSpecial(t, vocab);
        }
        addSpecial(model.padId() >= 0 ? model.piece(model.padId()) : "<PAD>", vocab);
        addSpecial(model.bosId() >= 0 ? model.piece(model.bosId()) : "<BOS>", vocab);
        addSpecial(model.eosId() >= 0 ? model.piece(model.eosId()) : "<EOS>", vocab);
        for (int i = 0; i < vocabExtraIds; i++) {
            extraIds.add(addSpecial("<extra_id_" + i + ">", vocab));
        }
        this.vocabSize = vocab.size();
    }

    private int addSpecial(String token, Map<String, Integer> vocab) {
        int id = vocab.computeIfAbsent(token, t -> vocab.size());
        special.put(token, id);
        specialById.put(id, token);
        return id;
    }

    /** Loads {@code --tokenizer-model} for {@code flavor}; {@code vocabExtraIds} only for {@link Flavor#SENTENCE_PIECE}. */
    public static SentencePieceTokenizer load(Flavor flavor, Path modelFile, int vocabExtraIds) {
        return new SentencePieceTokenizer(flavor, SentencePieceModel.load(modelFile), vocabExtraIds);
    }

    @Override
    public String typeName() {
        return switch (flavor) {
            case SENTENCE_PIECE -> "SentencePieceTokenizer";
            case GPT_SENTENCE_PIECE -> "GPTSentencePieceTokenizer";
            case LLAMA2 -> "Llama2Tokenizer";
        };
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public void tokenize(String text, IntList out) {
        switch (flavor) {
            case GPT_SENTENCE_PIECE -> model.encode(text, out);
            case LLAMA2 -> {
                out.add(bos());
                model.encode(text, out);
            }
            case SENTENCE_PIECE -> {
                int from = 0;
                while (true) {
                    String next = null;
                    int at = Integer.MAX_VALUE;
                    for (String t : special.keySet()) {   // the earliest; on a tie the first in Megatron's order
                        int i = text.indexOf(t, from);
                        if (i >= 0 && i < at) {
                            at = i;
                            next = t;
                        }
                    }
                    if (next == null) {
                        break;
                    }
                    model.encode(text.substring(from, at), out);
                    out.add(special.get(next));
                    from = at + next.length();
                }
                model.encode(text.substring(from), out);
            }
        }
    }

    /** {@code decode_ids}; Megatron's SentencePieceTokenizer writes its special tokens between spaces. */
    @Override
    public String detokenize(int[] ids) {
        if (flavor != Flavor.SENTENCE_PIECE) {
            return model.decode(ids);
        }
        StringBuilder text = new StringBuilder();
        int last = 0;
        for (int i = 0; i < ids.length; i++) {
            String token = specialById.get(ids[i]);
            if (token != null) {
                text.append(model.decode(Arrays.copyOfRange(ids, last, i))).append(' ').append(token).append(' ');
                last = i + 1;
            }
        }
        return text.append(model.decode(Arrays.copyOfRange(ids, last, ids.length))).toString();
    }

    @Override
    public int eod() {
        return flavor == Flavor.SENTENCE_PIECE ? special.get("<EOD>") : eos();
    }

    @Override
    public int eos() {
        return flavor == Flavor.SENTENCE_PIECE ? special.get(model.eosId() >= 0 ? model.piece(model.eosId()) : "<EOS>")
                : present(model.eosId(), "eos");
    }

    @Override
    public int bos() {
        return flavor == Flavor.SENTENCE_PIECE ? special.get(model.bosId() >= 0 ? model.piece(model.bosId()) : "<BOS>")
                : present(model.bosId(), "bos");
    }

    @Override
    public int pad() {
        return flavor == Flavor.SENTENCE_PIECE ? special.get(model.padId() >= 0 ? model.piece(model.padId()) : "<PAD>")
                : present(model.padId(), "pad");
    }

    @Override
    public int cls() {
        return specialOnly("<CLS>");
    }

    @Override
    public int sep() {
        return specialOnly("<SEP>");
    }

    @Override
    public int mask() {
        return specialOnly("<MASK>");
    }

    @Override
    public List<Integer> additionalSpecialTokenIds() {
        return List.copyOf(extraIds);
    }

    private int present(int id, String what) {
        if (id < 0) {
            throw new UnsupportedOperationException(typeName() + ": the SentencePiece model has no " + what + " piece");
        }
        return id;
    }

    private int specialOnly(String token) {
        Integer id = special.get(token);
        if (id == null) {
            throw new UnsupportedOperationException(typeName() + " has no " + token + " token");
        }
        return id;
    }
}
