// Host stand-in for CUDA's cuda_fp16.h, for the CPU emulation of elementwise.cu (elementwise_host_emulation.cpp):
// the 16-bit types as their bits and the conversions common.cuh uses, rounding to nearest even as the GPU does.
#pragma once
#include <cstdint>
#include <cstring>

struct float2 { float x, y; };
static inline float2 make_float2(float x, float y) { return {x, y}; }

struct __half { uint16_t bits; };
struct __half2 { __half x, y; };

static inline float __half2float(__half h) {
    _Float16 v;
    std::memcpy(&v, &h.bits, 2);
    return (float)v;
}
static inline __half __float2half_rn(float f) {
    _Float16 v = (_Float16)f;  // IEEE round to nearest even
    __half h;
    std::memcpy(&h.bits, &v, 2);
    return h;
}
static inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
static inline __half2 __floats2half2_rn(float a, float b) { return {__float2half_rn(a), __float2half_rn(b)}; }
