// The one translation unit nvcc compiles into megatron_kernels.fatbin: every kernel family,
// each in its own file, included here so that one module (one cuModuleLoadData) holds them all.
#include "elementwise.cu"
#include "norm.cu"
#include "embedding.cu"
#include "rotary.cu"
#include "cross_entropy.cu"
#include "optimizer.cu"
#include "flash_attention.cu"
