package org.megatronj.parallel.comm;

import org.megatronj.memory.Tensor;

/**
 * A group of ranks and the collective operations among them, shaped after NCCL so that an
 * {@code NcclCommunicator} drops in beside {@link LocalCommunicator}.
 *
 * <p><b>Ordering.</b> A communicator is one ordered stream: operations issued by a rank run in the
 * order it issued them, and the k-th operation of every member is matched with the k-th of the
 * others (its <i>sequence number</i>, counted from 0, appears in every error). The
 * {@code ...Async} forms return at once with a {@link CommHandle}; the plain forms issue and
 * wait. Every member must issue the same collectives in the same order, as with NCCL. Separate
 * communicators (TP, DP, ...) are separate streams and may overlap each other.
 *
 * <p><b>Buffers.</b> Tensors are contiguous; a buffer must not be touched by its rank between issuing
 * an async operation on it and awaiting the handle. All members pass tensors of the same dtype and
 * element count, checked at run time. Sums are taken in rank order (rank 0 first), so results are
 * bitwise reproducible however the threads are scheduled.
 *
 * <p><b>Failures.</b> An operation that waits beyond the communicator's timeout throws
 * {@link CollectiveTimeoutException} naming who arrived and who did not; other failures throw
 * {@link CommException}. After a failure the communicator refuses further operations.
 */
public interface Communicator extends AutoCloseable {

    /** The group's name as errors show it: "world", "tp", "dp", ... */
    String name();

    /** This rank's index in the group, 0 ≤ rank &lt; size. */
    int rank();

    int size();

    /** The global (world) rank of group member {@code groupRank}. */
    int globalRank(int groupRank);

    /** "rank 5 (tp 1, pp 0, dp 2)": how errors name a member (given by its index in the group). */
    String describeMember(int groupRank);

    /** In-place all-reduce: every member's {@code tensor} becomes the reduction of all members' tensors. */
    CommHandle allReduceAsync(Tensor tensor, ReduceOp op);

    /**
     * {@code output} (size x input's elements) becomes the concatenation of all members' inputs in
     * rank order, along dim 0 for {@code [s, b, h]} tensors. The input may be this rank's own chunk
     * of the output (an in-place all-gather, as the distributed optimizer uses it).
     */
    CommHandle allGatherAsync(Tensor input, Tensor output);

    /**
     * {@code output} (input's elements / size) becomes chunk {@code rank} of the reduction of all
     * members' inputs. The output may be this rank's own chunk of the input.
     */
    CommHandle reduceScatterAsync(Tensor input, Tensor output, ReduceOp op);

    /** Every member's {@code tensor} becomes member {@code root}'s (root given by its index in the group). */
    CommHandle broadcastAsync(Tensor tensor, int root);

    /**
     * Sends {@code tensor} to group member {@code peer}. Sends are matched with the peer's receives
     * from this rank in issue order; the tensor may be reused once the handle completes.
     */
    CommHandle sendAsync(Tensor tensor, int peer);

    /** Receives into {@code tensor} the next message that group member {@code peer} sent to this rank. */
    CommHandle recvAsync(Tensor tensor, int peer);

    /** Completes once every member has issued its barrier. */
    CommHandle barrierAsync();

    /**
     * A sub-communicator (ncclCommSplit): a collective over this group in which members passing the
     * same {@code color} form one new group, ordered by {@code key} (then by rank here). A negative
     * color means "in no group" and returns null.
     */
    Communicator split(String name, int color, int key);

    default void allReduce(Tensor tensor, ReduceOp op) {
        allReduceAsync(tensor, op).await();
    }

    default void allReduce(Tensor tensor) {
        allReduce(tensor, ReduceOp.SUM);
    }

    default void allGather(Tensor input, Tensor output) {
        allGatherAsync(input, output).await();
    }

    default void reduceScatter(Tensor input, Tensor output, ReduceOp op) {
        reduceScatterAsync(input, output, op).await();
    }

    default void reduceScatter(Tensor input, Tensor output) {
        reduceScatter(input, output, ReduceOp.SUM);
    }

    default void broadcast(Tensor tensor, int root) {
        broadcastAsync(tensor, root).await();
    }

    default void send(Tensor tensor, int peer) {
        sendAsync(tensor, peer).await();
    }

    default void recv(Tensor tensor, int peer) {
        recvAsync(tensor, peer).await();
    }

    default void barrier() {
        barrierAsync().await();
    }

    /** Waits for this rank's outstanding operations, then releases the communicator's resources. */
    @Override
    void close();
}
