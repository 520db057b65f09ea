/**
 * Gradients and optimizer state across ranks: {@link org.megatronj.parallel.optim.ParallelGradients}
 * (bucketed data-parallel reduction, optionally overlapped with backward; sequence-parallel and tied-embedding
 * sums; the global norm and clipping), {@link org.megatronj.parallel.optim.GradBuckets} and
 * {@link org.megatronj.parallel.optim.FlatShard} (buckets of a model chunk's flat store and a rank's shard of them),
 * and {@link org.megatronj.parallel.optim.DistributedAdam} (Megatron's distributed optimizer).
 */
package org.megatronj.parallel.optim;
