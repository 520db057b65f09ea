package org.megatronj.io.indexed;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * Writes a Megatron indexed dataset as a stream: tokens go straight to {@code prefix.bin.tmp},
 * sequence lengths, document-index entries and modes to small spill files, so memory stays
 * constant however large the corpus. {@link #finish()} assembles {@code prefix.idx.tmp} and
 * renames both files to their final names; {@link #close()} without {@code finish()} deletes
 * everything, so a failed run never leaves a half-written dataset under the final names. An
 * unfinished builder also deletes its temporary files when the JVM is stopped (Ctrl-C, SIGTERM),
 * where {@code close()} in a finally block never runs.
 *
 * <p>Same semantics as Megatron's {@code IndexedDatasetBuilder}: the document index starts with
 * 0 and {@link #endDocument()} appends the current sequence count.
 */
public final class IndexedDatasetBuilder implements AutoCloseable {
    private static final int BUFFER_BYTES = 1 << 20;

    private final Path prefix;
    private final IndexedDtype dtype;
    private final boolean multimodal;
    private final LittleEndianFileWriter bin;
    private final LittleEndianFileWriter lengths;
    private final LittleEndianFileWriter documents;
    private final LittleEndianFileWriter modes;
    private long sequenceCount;
    private long documentEntries;
    private boolean finished;
    private boolean closed;
    private final Thread deleteOnExit = new Thread(this::deleteTemporariesUnlessFinished, "delete-unfinished-dataset");

    public IndexedDatasetBuilder(Path prefix, IndexedDtype dtype) {
        this(prefix, dtype, false);
    }

    /** With {@code multimodal}, every sequence carries a mode byte ({@link #addSequence(int[], int, int, byte)}). */
    public IndexedDatasetBuilder(Path prefix, IndexedDtype dtype, boolean multimodal) {
        this.prefix = prefix;
        this.dtype = dtype;
        this.multimodal = multimodal;
        Path parent = prefix.toAbsolutePath().getParent();
        Path blocker = parent == null ? null : org.megatronj.io.Folders.fileInTheWay(parent);
        if (blocker != null) {
            throw new IllegalArgumentException("cannot create the output folder " + parent + ": " + blocker + " is a file, not a folder");
        }
        try {
            if (parent != null) Files.createDirectories(parent);
        } catch (IOException e) {
            // Java's message is only the path; the reason is in the exception's type.
            String reason = switch (e) {
                case java.nio.file.AccessDeniedException f -> "permission denied on " + f.getFile();
                case java.nio.file.NoSuchFileException f -> f.getFile() + " cannot be created there";
                default -> e.getMessage();
            };
            // Not chained as the cause: the CLI would print it again as "caused by: <path>: already exists".
            var error = new IllegalArgumentException("cannot create the output folder " + parent + ": " + reason);
            error.addSuppressed(e);
            throw error;
        }
        this.bin = new LittleEndianFileWriter(tmp(IndexedDataset.binPath(prefix)), BUFFER_BYTES);
        this.lengths = new LittleEndianFileWriter(sibling(".lengths.tmp"), 1 << 16);
        this.documents = new LittleEndianFileWriter(sibling(".docs.tmp"), 1 << 16);
        this.modes = multimodal ? new LittleEndianFileWriter(sibling(".modes.tmp"), 1 << 16) : null;
        documents.putLong(0);
        documentEntries = 1;
        Runtime.getRuntime().addShutdownHook(deleteOnExit);
    }

    public IndexedDtype dtype() {
        return dtype;
    }

    public long sequenceCount() {
        return sequenceCount;
    }

    /** Bytes of {@code .bin} written so far. */
    public long binBytes() {
        return bin.position();
    }

    /** Appends one sequence of a text dataset. */
    public void addSequence(int[] tokens, int offset, int length) {
        if (multimodal) {
            throw new IllegalStateException("this builder writes a multimodal dataset: give every sequence a mode");
        }
        writeSequence(tokens, offset, length);
    }

    /** Appends one sequence with its mode (multimodal datasets only). */
    public void addSequence(int[] tokens, int offset, int length, byte mode) {
        if (!multimodal) {
            throw new IllegalStateException("this builder writes a text dataset, which has no modes");
        }
        writeSequence(tokens, offset, length);
        modes.putByte(mode);
    }

    private void writeSequence(int[] tokens, int offset, int length) {
        checkOpen();
        java.util.Objects.checkFromIndexSize(offset, length, tokens.length);
        if (sequenceCount == Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(prefix + ": too many sequences for one dataset (2^31 - 9)");
        }
        for (int k = offset; k < offset + length; k++) {
            if (!dtype.holds(tokens[k])) {
                throw new IllegalArgumentException("token id " + tokens[k] + " does not fit the dataset's dtype " + dtype.numpyName()
                        + " (sequence " + sequenceCount + " of " + prefix + ")");
            }
        }
        bin.putTokens(tokens, offset, length, dtype);
        lengths.putInt(length);
        sequenceCount++;
    }

    /** Ends a document: appends the current number of sequences to the document index. */
    public void endDocument() {
        checkOpen();
        documents.putLong(sequenceCount);
        documentEntries++;
    }

    /**
     * Appends a whole dataset (Megatron's {@code add_index}): its tokens byte for byte, its lengths,
     * and its document index shifted by the sequences already written (without its leading 0).
     */
    public void addDataset(IndexedDataset other) {
        checkOpen();
        if (other.dtype() != dtype) {
            throw new DatasetFormatException("cannot merge " + other.prefix() + " (dtype " + other.dtype().numpyName()
                    + ") into " + prefix + " (dtype " + dtype.numpyName() + "): all datasets must have the same dtype");
        }
        if (other.isMultimodal() != multimodal) {
            throw new DatasetFormatException("cannot merge " + other.prefix() + " into " + prefix + ": one is multimodal, the other is not");
        }
        if (sequenceCount + other.sequenceCount() > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException(prefix + ": merging " + other.prefix() + " would exceed 2^31 - 9 sequences");
        }
        long offset = sequenceCount;
        for (int len : other.sequenceLengths()) {
            lengths.putInt(len);
        }
        long[] docs = other.documentIndex();
        for (int k = 1; k < docs.length; k++) {
            documents.putLong(offset + docs[k]);
        }
        documentEntries += docs.length - 1;
        if (multimodal) {
            modes.putBytes(other.modes());
        }
        sequenceCount += other.sequenceCount();
        bin.appendFile(IndexedDataset.binPath(other.prefix()));
    }

    /** Writes the {@code .idx} and moves {@code .bin} and {@code .idx} to their final names. */
    public synchronized void finish() {
        checkOpen();
        bin.flush();
        bin.close();
        lengths.flush();
        lengths.close();
        documents.flush();
        documents.close();
        if (modes != null) {
            modes.flush();
            modes.close();
        }
        Path idxTmp = tmp(IndexedDataset.idxPath(prefix));
        try (LittleEndianFileWriter idx = new LittleEndianFileWriter(idxTmp, BUFFER_BYTES)) {
            idx.putBytes(IndexedDataset.MAGIC);
            idx.putLong(IndexedDataset.VERSION);
            idx.putByte((byte) dtype.code());
            idx.putLong(sequenceCount);
            idx.putLong(documentEntries);
            idx.appendFile(lengths.path());
            writePointers(idx);
            idx.appendFile(documents.path());
            if (modes != null) {
                idx.appendFile(modes.path());
            }
            idx.flush();
        }
        try {
            Files.move(bin.path(), IndexedDataset.binPath(prefix), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            Files.move(idxTmp, IndexedDataset.idxPath(prefix), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot rename the finished dataset to " + prefix + ".{bin,idx}: " + e.getMessage(), e);
        }
        finished = true;
        deleteSpills();
        forgetShutdownHook();
    }

    /** Pointers are the running byte offsets; recomputed from the lengths spill file, one pass. */
    private void writePointers(LittleEndianFileWriter idx) {
        try (InputStream in = new BufferedInputStream(Files.newInputStream(lengths.path()), 1 << 16);
             DataInputStream data = new DataInputStream(in)) {
            long pointer = 0;
            for (long i = 0; i < sequenceCount; i++) {
                idx.putLong(pointer);
                pointer += (long) Integer.reverseBytes(data.readInt()) * dtype.byteSize();
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read back " + lengths.path() + ": " + e.getMessage(), e);
        }
    }

    /** Deletes all temporary files unless {@link #finish()} completed. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        forgetShutdownHook();
        if (!finished) {
            for (LittleEndianFileWriter w : modes == null ? List.of(bin, lengths, documents) : List.of(bin, lengths, documents, modes)) {
                try {
                    w.close();
                } catch (UncheckedIOException ignored) {
                    // closing after a failure: deleting the file below matters more
                }
            }
            deleteQuietly(bin.path());
            deleteQuietly(tmp(IndexedDataset.idxPath(prefix)));
            deleteSpills();
        }
    }

    /**
     * The shutdown hook: the writing thread may still be running, so this only unlinks the files
     * (it keeps writing into the unlinked files until the JVM halts) and marks the builder closed,
     * so that a {@link #finish()} after it renames nothing.
     */
    synchronized void deleteTemporariesUnlessFinished() {
        if (finished || closed) return;
        closed = true;
        deleteQuietly(bin.path());
        deleteQuietly(tmp(IndexedDataset.idxPath(prefix)));
        deleteSpills();
    }

    private void forgetShutdownHook() {
        try {
            Runtime.getRuntime().removeShutdownHook(deleteOnExit);
        } catch (IllegalStateException shuttingDown) {
            // the hook is running or about to: it finds the builder finished or closed and does nothing
        }
    }

    private void deleteSpills() {
        deleteQuietly(lengths.path());
        deleteQuietly(documents.path());
        if (modes != null) deleteQuietly(modes.path());
    }

    private void checkOpen() {
        if (finished || closed) {
            throw new IllegalStateException("the builder for " + prefix + " is already " + (finished ? "finished" : "closed"));
        }
    }

    private Path sibling(String suffix) {
        return prefix.resolveSibling(prefix.getFileName() + suffix);
    }

    private static Path tmp(Path p) {
        return p.resolveSibling(p.getFileName() + ".tmp");
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // best effort: a leftover *.tmp never shadows a final name
        }
    }
}
