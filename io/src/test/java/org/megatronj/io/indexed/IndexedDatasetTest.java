package org.megatronj.io.indexed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class IndexedDatasetTest {
    @TempDir
    Path dir;

    /** Three documents: [a b] [c] [] (sequence lengths 3, 0, 5, 2). */
    private Path writeSample(IndexedDtype dtype) {
        Path prefix = dir.resolve("sample_" + dtype.numpyName());
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, dtype)) {
            b.addSequence(new int[] {9, 1, 2, 3, 9}, 1, 3);
            b.addSequence(new int[0], 0, 0);
            b.endDocument();
            b.addSequence(new int[] {4, 5, 6, 7, 100}, 0, 5);
            b.endDocument();
            b.endDocument();
            b.addSequence(new int[] {8, 0}, 0, 2);
            b.endDocument();
            b.finish();
        }
        return prefix;
    }

    @ParameterizedTest
    @EnumSource(IndexedDtype.class)
    void roundTripsEveryDtype(IndexedDtype dtype) {
        Path prefix = writeSample(dtype);
        try (IndexedDataset ds = IndexedDataset.open(prefix)) {
            assertEquals(dtype, ds.dtype());
            assertEquals(4, ds.sequenceCount());
            assertEquals(4, ds.documentCount());
            assertArrayEquals(new int[] {3, 0, 5, 2}, ds.sequenceLengths());
            assertArrayEquals(new long[] {0, 2, 3, 3, 4}, ds.documentIndex());
            assertEquals(10, ds.totalTokens());
            assertEquals(3L * dtype.byteSize(), ds.sequencePointer(1));
            assertArrayEquals(new int[] {4, 5, 6, 7, 100}, ds.sequenceTokens(2));
            int[] dst = new int[4];
            ds.readTokens(2, 1, 3, dst, 1);
            assertArrayEquals(new int[] {0, 5, 6, 7}, dst);
            assertEquals(5L * dtype.byteSize(), ds.sequenceSegment(2).byteSize());
            assertThrows(IndexOutOfBoundsException.class, () -> ds.readTokens(2, 3, 3, new int[3], 0));
            assertThrows(IllegalStateException.class, ds::modes);
        }
    }

    @Test
    void layoutMatchesMegatronByteForByte() throws IOException {
        Path prefix = writeSample(IndexedDtype.UINT16);
        byte[] idx = Files.readAllBytes(IndexedDataset.idxPath(prefix));
        assertEquals(34 + 12 * 4 + 8 * 5, idx.length);
        ByteBuffer b = ByteBuffer.wrap(idx).order(ByteOrder.LITTLE_ENDIAN);
        assertArrayEquals(new byte[] {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0}, Arrays.copyOf(idx, 9));
        assertEquals(1L, b.getLong(9));
        assertEquals(8, idx[17]);
        assertEquals(4L, b.getLong(18));
        assertEquals(5L, b.getLong(26));
        assertEquals(5, b.getInt(34 + 8));
        assertEquals(6L, b.getLong(34 + 16 + 8 * 2));  // pointer of sequence 2: 3 tokens x 2 bytes
        byte[] bin = Files.readAllBytes(IndexedDataset.binPath(prefix));
        assertArrayEquals(new byte[] {1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 100, 0, 8, 0, 0, 0}, bin);
    }

    @Test
    void fiftySequencesGive1042ByteIndex() throws IOException {
        Path prefix = dir.resolve("fifty");
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.UINT16)) {
            for (int i = 0; i < 50; i++) {
                b.addSequence(new int[] {i, i + 1}, 0, 2);
                b.endDocument();
            }
            b.finish();
        }
        assertEquals(1042, Files.size(IndexedDataset.idxPath(prefix)));
    }

    @Test
    void emptyDatasetOpens() throws IOException {
        Path prefix = dir.resolve("empty");
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.UINT16)) {
            b.finish();
        }
        assertEquals(0, Files.size(IndexedDataset.binPath(prefix)));
        assertEquals(42, Files.size(IndexedDataset.idxPath(prefix)));
        try (IndexedDataset ds = IndexedDataset.open(prefix)) {
            assertEquals(0, ds.sequenceCount());
            assertEquals(0, ds.documentCount());
            assertEquals(0, ds.totalTokens());
        }
    }

    @Test
    void dtypeCodesAndVocabularyChoice() {
        assertEquals(IndexedDtype.UINT16, IndexedDtype.forVocabSize(50257));
        assertEquals(IndexedDtype.UINT16, IndexedDtype.forVocabSize(65499));
        assertEquals(IndexedDtype.INT32, IndexedDtype.forVocabSize(65500));
        assertEquals(IndexedDtype.FLOAT32, IndexedDtype.fromCode(7, false));
        assertEquals(IndexedDtype.FLOAT64, IndexedDtype.fromCode(7, true));
        assertEquals(4, IndexedDtype.fromCode(7, false).byteSize());
        assertThrows(DatasetFormatException.class, () -> IndexedDtype.fromCode(9, false));
    }

    @Test
    void legacyCodeSevenReadsEightByteFloats() throws IOException {
        Path prefix = writeSample(IndexedDtype.FLOAT64);
        byte[] idx = Files.readAllBytes(IndexedDataset.idxPath(prefix));
        idx[17] = 7;   // how legacy Megatron labelled np.double
        Files.write(IndexedDataset.idxPath(prefix), idx);
        try (IndexedDataset ds = IndexedDataset.openLegacy(prefix, false)) {
            assertArrayEquals(new int[] {4, 5, 6, 7, 100}, ds.sequenceTokens(2));
        }
        var e = assertThrows(DatasetFormatException.class, () -> IndexedDataset.open(prefix));  // read as float32, pointers disagree
        assertTrue(e.getMessage().contains("pointer 24 for sequence 1") && e.getMessage().contains("expected 12"), e.getMessage());
    }

    @Test
    void multimodalModesRoundTrip() {
        Path prefix = dir.resolve("mm");
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.INT32, true)) {
            b.addSequence(new int[] {1, 2}, 0, 2, (byte) 0);
            b.addSequence(new int[] {3}, 0, 1, (byte) 1);
            b.endDocument();
            b.finish();
        }
        try (IndexedDataset ds = IndexedDataset.open(prefix, true)) {
            assertArrayEquals(new byte[] {0, 1}, ds.modes());
        }
        var e = assertThrows(DatasetFormatException.class, () -> IndexedDataset.open(prefix));
        assertTrue(e.getMessage().contains("multimodal"), e.getMessage());
    }

    @Test
    void addDatasetConcatenatesLikeMegatronAddIndex() {
        Path a = writeSample(IndexedDtype.UINT16);
        Path merged = dir.resolve("merged");
        try (IndexedDataset ds = IndexedDataset.open(a); IndexedDatasetBuilder b = new IndexedDatasetBuilder(merged, IndexedDtype.UINT16)) {
            b.addDataset(ds);
            b.addDataset(ds);
            b.finish();
        }
        try (IndexedDataset m = IndexedDataset.open(merged)) {
            assertArrayEquals(new int[] {3, 0, 5, 2, 3, 0, 5, 2}, m.sequenceLengths());
            assertArrayEquals(new long[] {0, 2, 3, 3, 4, 6, 7, 7, 8}, m.documentIndex());
            assertArrayEquals(new int[] {4, 5, 6, 7, 100}, m.sequenceTokens(6));
        }
        Path other = writeSample(IndexedDtype.INT32);
        try (IndexedDataset ds = IndexedDataset.open(other); IndexedDatasetBuilder b = new IndexedDatasetBuilder(dir.resolve("x"), IndexedDtype.UINT16)) {
            assertThrows(DatasetFormatException.class, () -> b.addDataset(ds));
        }
    }

    @Test
    void unfinishedBuilderLeavesNothingBehind() throws IOException {
        Path prefix = dir.resolve("half");
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.UINT16)) {
            b.addSequence(new int[] {1, 2, 3}, 0, 3);
            b.endDocument();
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(0, files.count());
        }
    }

    @Test
    void tokenThatDoesNotFitTheDtypeIsRejected() {
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(dir.resolve("small"), IndexedDtype.UINT16)) {
            var e = assertThrows(IllegalArgumentException.class, () -> b.addSequence(new int[] {70000}, 0, 1));
            assertTrue(e.getMessage().contains("70000"), e.getMessage());
        }
    }

    @Test
    void largeRandomDatasetRoundTrips() {
        Random rnd = new Random(7);
        Path prefix = dir.resolve("random");
        int[][] seqs = new int[2000][];
        try (IndexedDatasetBuilder b = new IndexedDatasetBuilder(prefix, IndexedDtype.INT32)) {
            for (int i = 0; i < seqs.length; i++) {
                seqs[i] = rnd.ints(rnd.nextInt(300), 0, 1 << 20).toArray();
                b.addSequence(seqs[i], 0, seqs[i].length);
                if (rnd.nextInt(3) == 0) b.endDocument();
            }
            b.endDocument();
            b.finish();
        }
        try (IndexedDataset ds = IndexedDataset.open(prefix)) {
            for (int i = 0; i < seqs.length; i++) {
                assertArrayEquals(seqs[i], ds.sequenceTokens(i));
            }
            assertEquals(seqs.length, ds.documentIndex()[ds.documentCount()]);
            int[] viaSegment = ds.sequenceSegment(5).toArray(IndexedDataset.INT32);
            assertArrayEquals(seqs[5], viaSegment);
        }
    }

    // ---- bad files: one clear error naming the file, the offset and what was expected ----

    private DatasetFormatException corrupt(java.util.function.Consumer<ByteBuffer> edit, int newLength) throws IOException {
        Path prefix = writeSample(IndexedDtype.UINT16);
        Path idx = IndexedDataset.idxPath(prefix);
        byte[] bytes = Files.readAllBytes(idx);
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        edit.accept(b);
        Files.write(idx, Arrays.copyOf(bytes, newLength < 0 ? bytes.length : newLength));
        var e = assertThrows(DatasetFormatException.class, () -> IndexedDataset.open(prefix));
        assertTrue(e.getMessage().contains(idx.toString()) || e.getMessage().contains(".bin"), e.getMessage());
        return e;
    }

    @Test
    void wrongMagic() throws IOException {
        var e = corrupt(b -> b.put(0, (byte) 'X'), -1);
        assertTrue(e.getMessage().contains("MMIDIDX"), e.getMessage());
    }

    @Test
    void legacyTntIndexIsNamed() throws IOException {
        var e = corrupt(b -> b.put(0, "TNTIDX\0\0".getBytes()), -1);
        assertTrue(e.getMessage().contains("TNTIDX"), e.getMessage());
    }

    @Test
    void wrongVersion() throws IOException {
        var e = corrupt(b -> b.putLong(9, 2), -1);
        assertTrue(e.getMessage().contains("version 2") && e.getMessage().contains("byte 9"), e.getMessage());
    }

    @Test
    void wrongDtypeCode() throws IOException {
        var e = corrupt(b -> b.put(17, (byte) 11), -1);
        assertTrue(e.getMessage().contains("byte 17") && e.getMessage().contains("dtype code 11"), e.getMessage());
    }

    @Test
    void truncatedHeaderAndBody() throws IOException {
        assertTrue(corrupt(b -> { }, 20).getMessage().contains("shorter than the 34-byte header"));
        var e = corrupt(b -> { }, 60);
        assertTrue(e.getMessage().contains("requires 34 + 12N + 8M = 122 bytes"), e.getMessage());
    }

    @Test
    void binSizeDisagreesWithIndex() throws IOException {
        Path prefix = writeSample(IndexedDtype.UINT16);
        Path bin = IndexedDataset.binPath(prefix);
        Files.write(bin, Arrays.copyOf(Files.readAllBytes(bin), 11));
        var e = assertThrows(DatasetFormatException.class, () -> IndexedDataset.open(prefix));
        assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains("20 bytes"), e.getMessage());
    }

    @Test
    void badPointerAndDocumentIndex() throws IOException {
        var e1 = corrupt(b -> b.putLong(34 + 16 + 8, 3), -1);
        assertTrue(e1.getMessage().contains("pointer 3 for sequence 1") && e1.getMessage().contains("expected 6"), e1.getMessage());
        var e2 = corrupt(b -> b.putLong(34 + 48 + 16, 1), -1);
        assertTrue(e2.getMessage().contains("document-index entry 2"), e2.getMessage());
    }

    @Test
    void missingBinFile() throws IOException {
        Path prefix = writeSample(IndexedDtype.UINT16);
        Files.delete(IndexedDataset.binPath(prefix));
        var e = assertThrows(DatasetFormatException.class, () -> IndexedDataset.open(prefix));
        assertTrue(e.getMessage().contains("no such file"), e.getMessage());
        assertFalse(e.getMessage().isEmpty());
    }

    @Test
    void segmentsAreZeroCopyViews() {
        Path prefix = writeSample(IndexedDtype.UINT16);
        try (IndexedDataset ds = IndexedDataset.open(prefix)) {
            var seg = ds.sequenceSegment(2);
            assertEquals(4, seg.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, 0));
            assertTrue(seg.isMapped());
        }
    }

    /** Writes part of a dataset, says "ready" and waits to be stopped: a preprocess run interrupted by Ctrl-C or SIGTERM. */
    public static final class InterruptedWriter {
        public static void main(String[] args) throws InterruptedException {
            IndexedDatasetBuilder b = new IndexedDatasetBuilder(Path.of(args[0]), IndexedDtype.UINT16);
            b.addSequence(new int[] {1, 2, 3}, 0, 3);
            b.endDocument();
            System.out.println("ready");
            System.out.flush();
            Thread.sleep(60_000);
        }
    }

    @Test
    void aStoppedJvmLeavesNoTemporaryFiles() throws IOException, InterruptedException {
        String javaBin = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(javaBin, "-cp", System.getProperty("java.class.path"), InterruptedWriter.class.getName(),
                dir.resolve("out/corpus_text_document").toString()).redirectErrorStream(true).start();
        try (var out = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream()))) {
            assertEquals("ready", out.readLine());
            try (Stream<Path> files = Files.list(dir.resolve("out"))) {
                assertEquals(3, files.count(), "the .bin, lengths and document spill files are being written");
            }
            p.destroy();  // SIGTERM
            assertTrue(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS));
        } finally {
            p.destroyForcibly();
        }
        try (Stream<Path> files = Files.list(dir.resolve("out"))) {
            assertEquals(java.util.List.of(), files.toList());
        }
    }

    @Test
    void theExitCleanupLeavesAFinishedDatasetAloneAndStopsAnUnfinishedOne() throws IOException {
        Path prefix = writeSample(IndexedDtype.UINT16);
        try (IndexedDatasetBuilder finished = new IndexedDatasetBuilder(dir.resolve("done"), IndexedDtype.UINT16)) {
            finished.addSequence(new int[] {1}, 0, 1);
            finished.finish();
            finished.deleteTemporariesUnlessFinished();
        }
        assertTrue(Files.isRegularFile(dir.resolve("done.bin")) && Files.isRegularFile(dir.resolve("done.idx")));
        IndexedDatasetBuilder b = new IndexedDatasetBuilder(dir.resolve("half"), IndexedDtype.UINT16);
        b.addSequence(new int[] {1}, 0, 1);
        b.deleteTemporariesUnlessFinished();
        assertThrows(IllegalStateException.class, b::finish, "a finish after the cleanup must not rename anything");
        b.close();
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(java.util.List.of("done.bin", "done.idx", prefix.getFileName() + ".bin", prefix.getFileName() + ".idx"),
                    files.map(f -> f.getFileName().toString()).sorted().toList());
        }
    }
}
