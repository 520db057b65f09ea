package org.megatronj.bindings;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.ValueLayout;

import org.junit.jupiter.api.Test;
import org.megatronj.bindings.cublaslt.cublasLtMatmulAlgo_t;
import org.megatronj.bindings.cublaslt.cublasLtMatmulHeuristicResult_t;
import org.megatronj.bindings.cublaslt.cublasLt_h;
import org.megatronj.bindings.cuda.CUmemPoolProps_st;
import org.megatronj.bindings.cuda.CUuuid_st;
import org.megatronj.bindings.cuda.cuda_h;
import org.megatronj.bindings.nccl.ncclUniqueId;
import org.megatronj.bindings.nccl.nccl_h;

/**
 * The generated bindings against facts of the C headers (struct sizes and offsets as C lays them
 * out, enum values, descriptors of a few prototypes), and the library lookup's failure message.
 * None of this loads an NVIDIA library, so it runs everywhere.
 */
class GeneratedBindingsTest {

    @Test
    void structLayoutsMatchTheHeaders() {
        assertEquals(16, CUuuid_st.sizeof());
        assertEquals(88, CUmemPoolProps_st.sizeof());
        assertEquals(24, CUmemPoolProps_st.maxSize$OFFSET);
        assertEquals(64, cublasLtMatmulAlgo_t.sizeof());
        assertEquals(96, cublasLtMatmulHeuristicResult_t.sizeof());
        assertEquals(128, ncclUniqueId.sizeof());
        assertEquals(128, nccl_h.NCCL_UNIQUE_ID_BYTES());
    }

    @Test
    void constantsMatchTheHeaders() {
        assertEquals(0, cuda_h.CUDA_SUCCESS());
        assertEquals(2, cuda_h.CUDA_ERROR_OUT_OF_MEMORY());
        assertEquals(75, cuda_h.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR());
        assertEquals(14, cublasLt_h.CUDA_R_16BF());
        assertEquals(68, cublasLt_h.CUBLAS_COMPUTE_32F());
        assertEquals(9, nccl_h.ncclBfloat16());
    }

    @Test
    void descriptorsFollowThePrototypes() {
        // CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
        assertEquals(FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                ValueLayout.ADDRESS), cuda_h.cuMemAllocAsync$descriptor());
        // ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank): id by value
        FunctionDescriptor init = nccl_h.ncclCommInitRank$descriptor();
        assertEquals(128, init.argumentLayouts().get(2).byteSize());
    }

    @Test
    void missingLibraryNamesWhatWasSearched() {
        NativeLibrary lib = new NativeLibrary("libmegatron-test-missing.so.9", "libmegatron-test-missing.so.9");
        assertFalse(lib.isAvailable());
        UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class, lib::lookup);
        assertTrue(e.getMessage().contains("not found (searched"), e.getMessage());
        assertTrue(e.getMessage().contains(LibraryLocator.PATH_ENV), e.getMessage());
    }
}
