package org.megatronj.memory.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The kernels' fatbin, {@code org/megatronj/native/megatron_kernels.fatbin}, a resource of the
 * native jar built by nvcc (absent when the build had no nvcc). {@link #architectures} reads the
 * fatbin's entry headers, so {@code megatron info} can say which GPUs it serves without a GPU.
 */
public final class KernelImage {
    public static final String RESOURCE = "org/megatronj/native/megatron_kernels.fatbin";
    private static final int FATBIN_MAGIC = 0xBA55ED50;

    /** One entry of the fatbin: machine code for {@code sm_XY}, or PTX for {@code compute_XY}. */
    public record Entry(boolean ptx, int arch) {
        @Override
        public String toString() {
            return (ptx ? "compute_" : "sm_") + arch + (ptx ? " (PTX)" : "");
        }
    }

    private KernelImage() {
    }

    /** The fatbin's bytes, or empty when the jar was built without nvcc. */
    public static Optional<byte[]> load() {
        try (InputStream in = KernelImage.class.getClassLoader().getResourceAsStream(RESOURCE)) {
            return in == null ? Optional.empty() : Optional.of(in.readAllBytes());
        } catch (IOException e) {
            throw new CudaException("cannot read kernel resource " + RESOURCE + ": " + e.getMessage(), e);
        }
    }

    /** The entries of a fatbin image (fatbinary header: magic, version, header size, payload size; then entries). */
    public static List<Entry> architectures(byte[] image) {
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        if (image.length < 16 || b.getInt(0) != FATBIN_MAGIC) {
            throw new CudaException(RESOURCE + " is not a CUDA fatbin (bad magic); rebuild the native module", null);
        }
        int headerSize = Short.toUnsignedInt(b.getShort(6));
        long end = headerSize + b.getLong(8);
        List<Entry> entries = new ArrayList<>();
        long off = headerSize;
        while (off + 32 <= Math.min(end, image.length)) {
            int kind = Short.toUnsignedInt(b.getShort((int) off));
            long entryHeader = Integer.toUnsignedLong(b.getInt((int) off + 4));
            long payload = b.getLong((int) off + 8);
            int arch = b.getInt((int) off + 28);
            entries.add(new Entry(kind == 1, arch));
            off += entryHeader + payload;
        }
        return entries;
    }
}
