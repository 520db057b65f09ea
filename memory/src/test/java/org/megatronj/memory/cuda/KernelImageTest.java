package org.megatronj.memory.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Optional;

import org.junit.jupiter.api.Test;

/**
 * The fatbin resource the native module's nvcc step builds: it must hold machine code for sm_80
 * and sm_90 and PTX for newer GPUs. Runs without a GPU; skipped when the build had no nvcc.
 */
class KernelImageTest {

    @Test
    void fatbinHoldsSm80Sm90AndPtx() {
        Optional<byte[]> image = KernelImage.load();
        assumeTrue(image.isPresent(), "no " + KernelImage.RESOURCE + ": the native module was built without nvcc");
        List<KernelImage.Entry> entries = KernelImage.architectures(image.get());
        assertEquals(List.of(new KernelImage.Entry(false, 80), new KernelImage.Entry(true, 90), new KernelImage.Entry(false, 90)),
                entries.stream().sorted((a, b) -> a.arch() != b.arch() ? Integer.compare(a.arch(), b.arch())
                        : Boolean.compare(b.ptx(), a.ptx())).toList());
    }

    @Test
    void rejectsBytesThatAreNoFatbin() {
        CudaException e = assertThrows(CudaException.class, () -> KernelImage.architectures(new byte[64]));
        assertEquals(true, e.getMessage().contains("not a CUDA fatbin"));
    }
}
