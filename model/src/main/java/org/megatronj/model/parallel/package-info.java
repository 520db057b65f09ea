/**
 * What the model needs to know about tensor parallelism without depending on the parallel module:
 * the {@link org.megatronj.model.parallel.TensorParallelGroup} collectives (adapted from the parallel module's
 * communicators) and the {@link org.megatronj.model.parallel.TensorParallelism} of a model shard. The
 * tensor-parallel layers themselves ({@code ColumnParallelLinear}, {@code RowParallelLinear}, the vocab-parallel
 * {@code Embedding} and {@code LanguageModelLoss}) live in {@code org.megatronj.model.layers}.
 */
package org.megatronj.model.parallel;
