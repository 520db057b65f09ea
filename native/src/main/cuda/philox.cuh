// The Philox4x32-10 generator of the dropout masks (common.cuh includes it; the CPU emulation of the
// FlashAttention kernels, native/src/test/cuda/fa_host_emulation.cpp, includes it alone).
#pragma once

// Exactly memory/src/main/java/org/megatronj/memory/cpu/Philox.java: key = (low, high) 32 bits
// of seed; element e = offset + i uses counter (low, high 32 of e/4, 0, 0) and lane e % 4;
// u = (r >> 8) * 2^-24; kept when u >= p.
__device__ __forceinline__ uint4 mj_philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma unroll
    for (int round = 0; round < 10; round++) {
        if (round > 0) { k0 += W0; k1 += W1; }
        uint32_t hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
        uint32_t hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
    return make_uint4(c0, c1, c2, c3);
}

__device__ __forceinline__ float mj_uniform(unsigned long long seed, unsigned long long e) {
    unsigned long long block = e >> 2;
    uint4 r = mj_philox((uint32_t)block, (uint32_t)(block >> 32), 0u, 0u, (uint32_t)seed, (uint32_t)(seed >> 32));
    uint32_t lane = (uint32_t)(e & 3);
    uint32_t v = lane == 0 ? r.x : lane == 1 ? r.y : lane == 2 ? r.z : r.w;
    return (float)(v >> 8) * 0x1.0p-24f;
}
