package org.megatronj.bench;

import java.util.Map;
import java.util.TreeMap;
import org.megatronj.memory.Tensor;
import org.megatronj.parallel.comm.CommHandle;
import org.megatronj.parallel.comm.Communicator;
import org.megatronj.parallel.comm.ProcessGroups;
import org.megatronj.parallel.comm.RankContext;
import org.megatronj.parallel.comm.ReduceOp;

/**
 * A {@link Communicator} that forwards every operation and records, per (group, operation), how
 * many calls this rank issued, their payload bytes and the bytes this rank would put on the wire
 * if each collective ran as NCCL's bandwidth-optimal ring: all-reduce {@code 2 (n-1)/n S},
 * reduce-scatter and all-gather {@code (n-1)/n S} (S the full, unsharded buffer), send {@code S},
 * broadcast {@code S} on the root. The local communicator moves data through shared memory, so
 * the wire bytes are modelled from the measured payloads, not observed on a network.
 *
 * <p>One ledger per rank, shared by the communicators split from it; each rank thread only
 * touches its own ledger.
 */
public final class CountingCommunicator implements Communicator {

    /** Calls, payload and ring-model bytes sent of one (group, operation). */
    public static final class Tally {
        public long calls;
        public long payloadBytes;
        public double sentBytes;

        Tally copy() {
            Tally t = new Tally();
            t.calls = calls;
            t.payloadBytes = payloadBytes;
            t.sentBytes = sentBytes;
            return t;
        }
    }

    /**
     * One rank's tallies, keyed by group, operation and payload per call, e.g. {@code "tp all-reduce 262144"}
     * (calls of different sizes in one group are different things: activations, norm gradients, scalars).
     */
    public static final class Ledger {
        private final Map<String, Tally> tallies = new TreeMap<>();

        void add(String group, String op, long payload, double sent) {
            Tally t = tallies.computeIfAbsent(group + " " + op + " " + payload, k -> new Tally());
            t.calls++;
            t.payloadBytes += payload;
            t.sentBytes += sent;
        }

        /** A copy of the tallies so far. */
        public Map<String, Tally> snapshot() {
            Map<String, Tally> copy = new TreeMap<>();
            tallies.forEach((k, v) -> copy.put(k, v.copy()));
            return copy;
        }

        /** What was added since {@code before} (a {@link #snapshot}). */
        public Map<String, Tally> since(Map<String, Tally> before) {
            Map<String, Tally> diff = new TreeMap<>();
            tallies.forEach((k, now) -> {
                Tally was = before.get(k);
                Tally d = now.copy();
                if (was != null) {
                    d.calls -= was.calls;
                    d.payloadBytes -= was.payloadBytes;
                    d.sentBytes -= was.sentBytes;
                }
                if (d.calls > 0) {
                    diff.put(k, d);
                }
            });
            return diff;
        }
    }

    private final Communicator inner;
    private final Ledger ledger;

    private CountingCommunicator(Communicator inner, Ledger ledger) {
        this.inner = inner;
        this.ledger = ledger;
    }

    /** The rank's context with every group communicator counted into {@code ledger}. */
    public static RankContext counting(RankContext ctx, Ledger ledger) {
        ProcessGroups g = ctx.groups();
        Communicator data = wrap(g.data(), ledger);
        Communicator dataWithContext = g.dataWithContext() == g.data() ? data : wrap(g.dataWithContext(), ledger);
        return new RankContext(ctx.state(), new ProcessGroups(wrap(g.world(), ledger), wrap(g.tensor(), ledger),
                wrap(g.pipeline(), ledger), data, wrap(g.context(), ledger), dataWithContext, wrap(g.modelParallel(), ledger),
                wrap(g.embedding(), ledger)));
    }

    private static Communicator wrap(Communicator c, Ledger ledger) {
        return c == null ? null : new CountingCommunicator(c, ledger);
    }

    private double share() {
        return (double) (size() - 1) / size();
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public int rank() {
        return inner.rank();
    }

    @Override
    public int size() {
        return inner.size();
    }

    @Override
    public int globalRank(int groupRank) {
        return inner.globalRank(groupRank);
    }

    @Override
    public String describeMember(int groupRank) {
        return inner.describeMember(groupRank);
    }

    @Override
    public CommHandle allReduceAsync(Tensor tensor, ReduceOp op) {
        ledger.add(name(), "all-reduce", tensor.byteSize(), 2 * share() * tensor.byteSize());
        return inner.allReduceAsync(tensor, op);
    }

    @Override
    public CommHandle allGatherAsync(Tensor input, Tensor output) {
        ledger.add(name(), "all-gather", output.byteSize(), share() * output.byteSize());
        return inner.allGatherAsync(input, output);
    }

    @Override
    public CommHandle reduceScatterAsync(Tensor input, Tensor output, ReduceOp op) {
        ledger.add(name(), "reduce-scatter", input.byteSize(), share() * input.byteSize());
        return inner.reduceScatterAsync(input, output, op);
    }

    @Override
    public CommHandle broadcastAsync(Tensor tensor, int root) {
        ledger.add(name(), "broadcast", tensor.byteSize(), rank() == root && size() > 1 ? tensor.byteSize() : 0);
        return inner.broadcastAsync(tensor, root);
    }

    @Override
    public CommHandle sendAsync(Tensor tensor, int peer) {
        ledger.add(name(), "send", tensor.byteSize(), tensor.byteSize());
        return inner.sendAsync(tensor, peer);
    }

    @Override
    public CommHandle recvAsync(Tensor tensor, int peer) {
        ledger.add(name(), "recv", tensor.byteSize(), 0);
        return inner.recvAsync(tensor, peer);
    }

    @Override
    public CommHandle barrierAsync() {
        return inner.barrierAsync();
    }

    @Override
    public Communicator split(String name, int color, int key) {
        return wrap(inner.split(name, color, key), ledger);
    }

    @Override
    public void close() {
        inner.close();
    }
}
