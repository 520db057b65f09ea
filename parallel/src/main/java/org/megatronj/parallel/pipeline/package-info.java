/**
 * Pipeline parallelism and the per-rank training step: {@link org.megatronj.parallel.pipeline.PipelineChannels}
 * (P2P links of a pipeline), {@link org.megatronj.parallel.pipeline.PipelineSchedule} (no pipelining, 1F1B,
 * interleaved 1F1B, forward-only) over a rank's model chunks, and
 * {@link org.megatronj.parallel.pipeline.ParallelGptRank}, which puts a rank's GPT chunks, schedule, gradient
 * synchronisation and optimizer together into one training iteration equal to the single-rank one.
 */
package org.megatronj.parallel.pipeline;
