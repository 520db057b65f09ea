package org.megatronj.cli;

import org.megatronj.io.indexed.IndexedDatasetBuilder;
import org.megatronj.io.indexed.IndexedDtype;

import java.nio.file.Path;

/** The training tests' corpus: 40 documents of a learnable pattern over ids 0..49 (NullTokenizer --vocab-size 51, EOD 50). */
final class ToyCorpus {
    private ToyCorpus() {
    }

    /** Writes it as {@code dir/data/toy_text_document.{bin,idx}} and returns that prefix. */
    static Path write(Path dir) {
        Path prefix = dir.resolve("data/toy_text_document");
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.UINT16)) {
            for (int d = 0; d < 40; d++) {
                int[] doc = new int[60];
                int cur = d % 50;
                for (int i = 0; i < doc.length - 1; i++) {
                    doc[i] = cur;
                    cur = (cur * 7 + 3) % 50;
                }
                doc[doc.length - 1] = 50;
                b.addSequence(doc, 0, doc.length);
                b.endDocument();
            }
            b.finish();
        }
        return prefix;
    }
}
