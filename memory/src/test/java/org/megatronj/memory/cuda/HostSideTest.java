package org.megatronj.memory.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import org.junit.jupiter.api.Test;

/** The CUDA backend's host-side arithmetic, which needs no GPU: alignments, shared-memory sizes, fatbin parsing. */
class HostSideTest {

    @Test
    void operandAlignmentIsTheLargestPowerOfTwoUpTo256() {
        assertEquals(256, CublasLtGemm.alignment(0x7f0000001000L));
        assertEquals(2, CublasLtGemm.alignment(0x7f0000001002L));
        assertEquals(16, CublasLtGemm.alignment(0x7f0000001010L));
    }

    @Test
    void attentionBackwardSharedMemoryFitsAmpereAndHopper() {
        // K, V, dK, dV tiles of 32 x (d + 1) floats and two d-float rows per warp (flash_attention.cu)
        assertEquals((4 * 32 * 129 + 2 * 4 * 128) * 4, CudaAttention.backwardSharedBytes(128));
        for (int d : CudaAttention.HEAD_DIMS) {
            assertTrue(CudaAttention.backwardSharedBytes(d) <= 163 * 1024, "d=" + d + " exceeds sm_80's 163 KiB per block");
        }
        assertTrue(CudaAttention.backwardSharedBytes(128) > 48 * 1024, "d=128 needs the opt-in above 48 KiB");
    }

    @Test
    void fatbinEntriesAreReadFromTheirHeaders() {
        // a fatbin of two entries: sm_86 machine code (kind 2) and compute_90 PTX (kind 1)
        ByteBuffer b = ByteBuffer.allocate(16 + 2 * (64 + 8)).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, 0xBA55ED50).putShort(4, (short) 1).putShort(6, (short) 16).putLong(8, 2 * (64 + 8));
        int off = 16;
        for (int[] e : new int[][] {{2, 86}, {1, 90}}) {
            b.putShort(off, (short) e[0]).putInt(off + 4, 64).putLong(off + 8, 8).putInt(off + 28, e[1]);
            off += 64 + 8;
        }
        assertEquals(List.of(new KernelImage.Entry(false, 86), new KernelImage.Entry(true, 90)),
                KernelImage.architectures(b.array()));
    }
}
