/**
 * Data-parallel gradients: the flat fp32 gradient buffer split into buckets in Megatron's layout
 * ({@link org.megatronj.parallel.data.GradBufferLayout}), its storage
 * ({@link org.megatronj.parallel.data.GradBuffer}), the bucketed all-reduce or reduce-scatter with
 * overlap during backward ({@link org.megatronj.parallel.data.GradReducer}), and the
 * distributed-optimizer shard ranges (which DP rank owns which slice of which parameter).
 */
package org.megatronj.parallel.data;
