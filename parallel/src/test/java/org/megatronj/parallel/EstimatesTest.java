package org.megatronj.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class EstimatesTest {

    /** Megatron's distributed-optimizer table. */
    @Test
    void bytesPerParameterMatchMegatronsTable() {
        assertEquals(16, ModelStateMemory.FP32.bytesPerParameter(false, 8));
        assertEquals(8 + 8.0 / 8, ModelStateMemory.FP32.bytesPerParameter(true, 8));
        assertEquals(18, ModelStateMemory.BF16_PARAMS_FP32_GRADS.bytesPerParameter(false, 4));
        assertEquals(6 + 12.0 / 4, ModelStateMemory.BF16_PARAMS_FP32_GRADS.bytesPerParameter(true, 4));
        assertEquals(20, ModelStateMemory.FP16_PARAMS_FP16_GRADS.bytesPerParameter(false, 2));
        assertEquals(4 + 16.0 / 2, ModelStateMemory.FP16_PARAMS_FP16_GRADS.bytesPerParameter(true, 2));
        assertEquals(16, ModelStateMemory.FP32.bytesPerParameter(true, 1), "one DP rank: nothing to shard");
        assertEquals(124_000_000L * 16.0, ModelStateMemory.FP32.bytesPerRank(124_000_000L, false, 1));
    }

    @Test
    void communicationVolumeByHand() {
        // 4 layers, h 8, s 16, b 2: one activation = 16*2*8*2 bytes = 512 bytes (bf16)
        CommunicationVolume.Workload w = new CommunicationVolume.Workload(4, 8, 16, 2, 3, 1000, 2, 4, 2, false);
        CommunicationVolume none = CommunicationVolume.estimate(ParallelConfig.single(), 1, false, w);
        assertEquals(0, none.totalBytes());

        // TP 2, PP 1: per micro-batch (4 layers x 4 + 2 embedding) all-reduces of 2*(1/2)*512 = 512 bytes
        CommunicationVolume tp = CommunicationVolume.estimate(ParallelConfig.of(2, 1), 1, false, w);
        assertEquals(3 * 512.0 * (4 * 4 + 2), tp.tensorParallelBytes());

        // PP 2: 2 messages of 512 bytes per micro-batch; TP 2 with sequence parallel halves the message
        assertEquals(2 * 3 * 512.0, CommunicationVolume.estimate(ParallelConfig.of(1, 2), 1, false, w).pipelineBytes());
        ParallelConfig spPipe = new ParallelConfig(2, 2, 1, true);
        // interleaved: 4 layers / (2 stages x 1 layer) = 2 chunks
        assertEquals(2 * 3 * 2 * 256.0, CommunicationVolume.estimate(spPipe, 1, false, w).pipelineBytes());

        // DP 4: all-reduce 2*(3/4)*1000*4 bytes; distributed optimizer (3/4)*1000*(4+2)
        assertEquals(6000.0, CommunicationVolume.estimate(ParallelConfig.single(), 4, false, w).dataParallelBytes());
        assertEquals(4500.0, CommunicationVolume.estimate(ParallelConfig.single(), 4, true, w).dataParallelBytes());
    }
}
