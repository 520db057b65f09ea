/**
 * The CPU backend: {@link org.megatronj.memory.cpu.CpuBackend} implements every op of
 * {@link org.megatronj.memory.Backend} with Java Vector API kernels, one family per class
 * ({@code ElementwiseKernels}, {@code ActivationKernels}, {@code NormKernels},
 * {@code EmbeddingKernels}, {@code AttentionKernels} with {@code AttentionTiles},
 * {@code CrossEntropyKernels}, {@code OptimizerKernels}; matrix products in {@link org.megatronj.memory.cpu.CpuGemm},
 * and in {@code SmallRowsGemm} for products of at most 16 rows, the decode steps).
 *
 * <p>Conventions shared by the kernels:
 * <ul>
 *   <li>Tensors of any float dtype are loaded a row or block at a time into {@code float[]}
 *       ({@code FloatRows}), computed on in fp32 and rounded to nearest even on store.</li>
 *   <li>Every kernel has a vector path and a scalar path. {@code -Dmegatron.vector.bits} picks the
 *       width for the whole JVM (0 forces scalar); a backend built with {@code vectorized = false}
 *       runs the scalar path, which is how tests cover both.</li>
 *   <li>Work is split over {@link org.megatronj.memory.cpu.CpuThreads} ({@code -Dmegatron.cpu.threads})
 *       into pieces fixed by the shapes alone, and reductions add those pieces in a fixed order,
 *       so the thread count never changes the arithmetic.</li>
 *   <li>Vector kernels never call {@code reduceLanes(ADD)} or {@code lanewise(EXP/TANH/...)}: both
 *       round differently in the interpreter and in JIT-compiled code. Lane sums and {@code exp}/{@code tanh}
 *       go through {@code LaneMath}, built from exactly rounded operations in a fixed order, so a
 *       kernel gives the same bits on every call of every run, and a resumed training run
 *       reproduces an uninterrupted one.</li>
 *   <li>Dropout masks come from {@link org.megatronj.memory.cpu.Philox}, whose class comment
 *       defines them bit for bit for the CUDA kernels to mirror.</li>
 *   <li>{@link org.megatronj.memory.cpu.ReferenceAttention} is the plain float64 attention that
 *       tests (of this backend and of others) compare against.</li>
 * </ul>
 */
package org.megatronj.memory.cpu;
