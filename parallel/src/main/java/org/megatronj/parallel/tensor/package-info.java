/**
 * Tensor-parallel communication mappings in Megatron-core's vocabulary (copy-to / reduce-from /
 * scatter-to / gather-from the tensor-parallel region and the sequence-parallel forms), as
 * explicit forward/backward pairs on {@code [s, b, h]} tensors. The building blocks of
 * column-parallel and row-parallel linear layers, vocab-parallel embedding and cross-entropy.
 */
package org.megatronj.parallel.tensor;
