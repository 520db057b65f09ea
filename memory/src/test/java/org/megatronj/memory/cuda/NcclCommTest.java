package org.megatronj.memory.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;
import org.megatronj.memory.TensorArena;

/**
 * The checked NCCL layer on one GPU: a communicator of one rank (NCCL refuses two ranks on one
 * device, so multi-rank runs belong to the parallel module's launch tests). Tagged gpu.
 */
@Tag("gpu")
class NcclCommTest {

    @Test
    void singleRankCollectivesAndErrors() {
        GpuTests.requireGpu();
        assertTrue(NcclComm.version() >= 21800, "NCCL " + NcclComm.version() + " is older than 2.18");
        try (CudaBackend gpu = new CudaBackend(0); TensorArena arena = TensorArena.named("nccl-test")) {
            byte[] id = NcclComm.uniqueId();
            assertEquals(128, id.length);
            try (NcclComm comm = NcclComm.initRank(1, id, 0)) {
                float[] values = {1, -2, 3.5f, 4};
                Tensor host = arena.fromFloats(values, 4);
                Tensor x = gpu.allocate(arena, DType.F32, 4);
                Tensor y = gpu.allocate(arena, DType.F32, 4);
                gpu.copy(host, x);
                comm.allReduce(x.address(), y.address(), 4, DType.F32, NcclComm.ReduceOp.SUM, gpu.stream());
                comm.allGather(y.address(), x.address(), 4, DType.F32, gpu.stream());
                Tensor back = arena.allocate(DType.F32, 4);
                gpu.copy(x, back);
                assertArrayEquals(values, back.toFloatArray());
                CudaException e = assertThrows(CudaException.class,
                        () -> comm.broadcast(x.address(), y.address(), 4, DType.F32, 5, gpu.stream()));
                assertTrue(e.getMessage().contains("ncclBroadcast"), e.getMessage());
            }
        }
    }
}
