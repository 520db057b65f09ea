/**
 * Communication between ranks: the NCCL-shaped {@link org.megatronj.parallel.comm.Communicator}
 * (collectives, send/recv, sub-communicators by split, async handles on an ordered stream), its
 * in-JVM implementation {@link org.megatronj.parallel.comm.LocalCommunicator} (ranks are threads
 * sharing host memory; deterministic rank-order sums; timeouts that name the missing ranks), the
 * per-rank {@link org.megatronj.parallel.comm.ProcessGroups} made from a
 * {@link org.megatronj.parallel.ParallelState}, and {@link org.megatronj.parallel.comm.LocalWorld},
 * which runs any parallel layout on one machine.
 */
package org.megatronj.parallel.comm;
