package org.megatronj.parallel.comm;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.megatronj.memory.Tensor;

/**
 * A communicator whose ranks are threads of one JVM sharing host memory: the way to run any
 * parallel layout on one machine, and the reference the NCCL communicator is tested against.
 *
 * <p>Each collective is a rendezvous of the members' k-th operations: the members post their
 * tensors, each reduces (or copies) its own share reading the others' memory directly, and the
 * results are copied out once everyone has finished reading. A sum visits ranks in order, so it is
 * bitwise the same however the threads run.
 *
 * <p>Streams: collectives and sends run in issue order on this rank's stream (inline for the plain
 * forms, on one worker thread for the async forms). Receives run on a second stream of their own so
 * that a pending receive never holds back this rank's sends, as NCCL's grouped send/recv; await a
 * receive's handle before reading its tensor. Sends copy the tensor when they run and complete at
 * once (eager), so two ranks may send to each other before receiving.
 */
public final class LocalCommunicator implements Communicator {
    private final LocalGroup group;
    private final int member;
    private final Object issueLock = new Object();
    private final long[] sendSeq;
    private final long[] recvSeq;
    private long nextSeq;
    private ExecutorService stream;
    private ExecutorService recvStream;
    private CompletableFuture<Void> tail = CompletableFuture.completedFuture(null);
    private volatile RuntimeException failure;
    private volatile boolean closed;

    private LocalCommunicator(LocalGroup group, int member) {
        this.group = group;
        this.member = member;
        this.sendSeq = new long[group.size()];
        this.recvSeq = new long[group.size()];
    }

    /**
     * The world communicators of {@code worldSize} ranks, one per rank (index = rank), to hand to
     * the rank threads.
     *
     * @param rankDescriber names a global rank in errors, e.g. with its (tp, pp, dp) position
     * @param timeout       how long an operation waits for the other ranks before it fails
     */
    public static List<LocalCommunicator> createWorld(int worldSize, IntFunction<String> rankDescriber, Duration timeout) {
        LocalFabric fabric = new LocalFabric(worldSize, rankDescriber, timeout);
        int[] ranks = new int[worldSize];
        for (int i = 0; i < worldSize; i++) {
            ranks[i] = i;
        }
        LocalGroup world = fabric.newGroup("world", ranks);
        List<LocalCommunicator> comms = new ArrayList<>(worldSize);
        for (int i = 0; i < worldSize; i++) {
            comms.add(new LocalCommunicator(world, i));
        }
        return comms;
    }

    /**
     * Fails every pending and future operation of every communicator of this world with
     * {@code reason}: what {@link LocalWorld} does when a rank fails, so the others stop waiting.
     */
    public void abortWorld(String reason, Throwable cause) {
        group.fabric().abort(reason, cause);
    }

    @Override
    public String name() {
        return group.name();
    }

    @Override
    public int rank() {
        return member;
    }

    @Override
    public int size() {
        return group.size();
    }

    @Override
    public int globalRank(int groupRank) {
        return group.globalRank(groupRank);
    }

    @Override
    public String describeMember(int groupRank) {
        return group.describeMember(groupRank);
    }

    // ---------------------------------------------------------------- issuing on the streams

    private record Payload(Tensor a, Tensor b, ReduceOp op, int root) {
    }

    private interface Work {
        void run(long seq);
    }

    private CommHandle issueCollective(String op, boolean async, Work work) {
        synchronized (issueLock) {
            long seq = nextSeq++;
            return issue(op, seq, async, () -> work.run(seq));
        }
    }

    private CommHandle issue(String op, long seq, boolean async, Runnable work) {
        synchronized (issueLock) {
            requireUsable(op, seq);
            Runnable guarded = () -> {
                requireUsable(op, seq);
                try {
                    work.run();
                } catch (RuntimeException e) {
                    failure = e;
                    throw e;
                }
            };
            if (!async) {
                drain();
                guarded.run();
                return CommHandle.completed();
            }
            if (stream == null) {
                stream = Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon()
                        .name("comm-" + group.name() + "-" + group.globalRank(member)).factory());
            }
            tail = CompletableFuture.runAsync(guarded, stream);
            return new FutureHandle(tail);
        }
    }

    /** Waits for this rank's queued async operations (stream order for a following inline one). */
    private void drain() {
        try {
            tail.join();
        } catch (CompletionException e) {
            // the failure is recorded in `failure` and reported by requireUsable
        }
    }

    private void requireUsable(String op, long seq) {
        if (closed) {
            throw new CommException(group.label(op, seq) + " at " + describeMember(member) + ": communicator is closed");
        }
        RuntimeException f = failure;
        if (f != null) {
            throw new CommException(group.label(op, seq) + " at " + describeMember(member)
                    + " refused: an earlier operation of this communicator failed: " + f.getMessage(), f);
        }
    }

    private record FutureHandle(CompletableFuture<Void> future) implements CommHandle {
        @Override
        public void await() {
            try {
                future.join();
            } catch (CompletionException e) {
                if (e.getCause() instanceof RuntimeException r) {
                    throw r;
                }
                throw new CommException("communication failed: " + e.getCause(), e.getCause());
            }
        }

        @Override
        public boolean isDone() {
            return future.isDone();
        }
    }

    // ---------------------------------------------------------------- collectives

    @Override
    public CommHandle allReduceAsync(Tensor tensor, ReduceOp op) {
        requireHost("allReduce", tensor);
        return issueCollective("allReduce", true, seq -> allReduce(seq, tensor, op));
    }

    @Override
    public void allReduce(Tensor tensor, ReduceOp op) {
        requireHost("allReduce", tensor);
        issueCollective("allReduce", false, seq -> allReduce(seq, tensor, op));
    }

    private void allReduce(long seq, Tensor tensor, ReduceOp op) {
        int size = group.size();
        LocalGroup.Rendezvous rv = group.arrive("allReduce", seq, member, new Payload(tensor, null, op, 0));
        group.await(rv, LocalGroup.ARRIVAL, member);
        requireMatching(rv, false);
        long n = tensor.numel();
        long from = HostBuffers.chunkStart(n, size, member);
        long count = HostBuffers.chunkStart(n, size, member + 1) - from;
        MemorySegment result = HostBuffers.scratch(count * tensor.dtype().byteSize());
        HostBuffers.reduce(tensor.dtype(), segmentsA(rv), from, count, op, result);
        rv.results[member] = result;
        group.mark(rv, LocalGroup.COMPLETION, member);
        group.await(rv, LocalGroup.COMPLETION, member);
        for (int k = 0; k < size; k++) {
            long start = HostBuffers.chunkStart(n, size, k);
            long len = HostBuffers.chunkStart(n, size, k + 1) - start;
            HostBuffers.copy(tensor.dtype(), rv.results[k], 0, tensor.segment(), start, len);
        }
        group.leave(rv);
    }

    @Override
    public CommHandle reduceScatterAsync(Tensor input, Tensor output, ReduceOp op) {
        requireScatterShapes("reduceScatter", output, input);
        return issueCollective("reduceScatter", true, seq -> reduceScatter(seq, input, output, op));
    }

    @Override
    public void reduceScatter(Tensor input, Tensor output, ReduceOp op) {
        requireScatterShapes("reduceScatter", output, input);
        issueCollective("reduceScatter", false, seq -> reduceScatter(seq, input, output, op));
    }

    private void reduceScatter(long seq, Tensor input, Tensor output, ReduceOp op) {
        LocalGroup.Rendezvous rv = group.arrive("reduceScatter", seq, member, new Payload(input, output, op, 0));
        group.await(rv, LocalGroup.ARRIVAL, member);
        requireMatching(rv, true);
        long count = output.numel();
        MemorySegment result = HostBuffers.scratch(count * input.dtype().byteSize());
        HostBuffers.reduce(input.dtype(), segmentsA(rv), member * count, count, op, result);
        group.mark(rv, LocalGroup.COMPLETION, member);
        group.await(rv, LocalGroup.COMPLETION, member);
        HostBuffers.copy(input.dtype(), result, 0, output.segment(), 0, count);
        group.leave(rv);
    }

    @Override
    public CommHandle allGatherAsync(Tensor input, Tensor output) {
        requireScatterShapes("allGather", input, output);
        return issueCollective("allGather", true, seq -> allGather(seq, input, output));
    }

    @Override
    public void allGather(Tensor input, Tensor output) {
        requireScatterShapes("allGather", input, output);
        issueCollective("allGather", false, seq -> allGather(seq, input, output));
    }

    private void allGather(long seq, Tensor input, Tensor output) {
        LocalGroup.Rendezvous rv = group.arrive("allGather", seq, member, new Payload(input, output, null, 0));
        group.await(rv, LocalGroup.ARRIVAL, member);
        requireMatching(rv, true);
        long count = input.numel();
        for (int k = 0; k < group.size(); k++) {
            Tensor in = ((Payload) rv.payloads[k]).a();
            boolean inPlace = k == member && in.segment().address() == output.segment().address() + k * count * in.dtype().byteSize();
            if (!inPlace) {
                HostBuffers.copy(in.dtype(), in.segment(), 0, output.segment(), k * count, count);
            }
        }
        // Others read this rank's input until they pass COMPLETION: keep it untouched until then.
        group.mark(rv, LocalGroup.COMPLETION, member);
        group.await(rv, LocalGroup.COMPLETION, member);
        group.leave(rv);
    }

    @Override
    public CommHandle broadcastAsync(Tensor tensor, int root) {
        requireBroadcast(tensor, root);
        return issueCollective("broadcast", true, seq -> broadcast(seq, tensor, root));
    }

    @Override
    public void broadcast(Tensor tensor, int root) {
        requireBroadcast(tensor, root);
        issueCollective("broadcast", false, seq -> broadcast(seq, tensor, root));
    }

    private void broadcast(long seq, Tensor tensor, int root) {
        LocalGroup.Rendezvous rv = group.arrive("broadcast", seq, member, new Payload(tensor, null, null, root));
        group.await(rv, LocalGroup.ARRIVAL, member);
        requireMatching(rv, false);
        if (member != root) {
            Tensor src = ((Payload) rv.payloads[root]).a();
            HostBuffers.copy(tensor.dtype(), src.segment(), 0, tensor.segment(), 0, tensor.numel());
        }
        group.mark(rv, LocalGroup.COMPLETION, member);
        group.await(rv, LocalGroup.COMPLETION, member);
        group.leave(rv);
    }

    @Override
    public CommHandle barrierAsync() {
        return issueCollective("barrier", true, this::barrier);
    }

    @Override
    public void barrier() {
        issueCollective("barrier", false, this::barrier);
    }

    private void barrier(long seq) {
        LocalGroup.Rendezvous rv = group.arrive("barrier", seq, member, new Payload(null, null, null, 0));
        group.await(rv, LocalGroup.ARRIVAL, member);
        group.leave(rv);
    }

    @Override
    public Communicator split(String name, int color, int key) {
        LocalCommunicator[] result = new LocalCommunicator[1];
        issueCollective("split", false, seq -> result[0] = split(seq, name, color, key));
        return result[0];
    }

    private LocalCommunicator split(long seq, String name, int color, int key) {
        LocalGroup.Rendezvous rv = group.arrive("split", seq, member, new int[] {color, key});
        group.await(rv, LocalGroup.ARRIVAL, member);
        @SuppressWarnings("unchecked")
        Map<Integer, LocalGroup> groups = (Map<Integer, LocalGroup>) group.shared(rv, () -> buildSplit(rv, name));
        group.leave(rv);
        if (color < 0) {
            return null;
        }
        LocalGroup sub = groups.get(color);
        int globalRank = group.globalRank(member);
        for (int m = 0; m < sub.size(); m++) {
            if (sub.globalRank(m) == globalRank) {
                return new LocalCommunicator(sub, m);
            }
        }
        throw new IllegalStateException("split: " + describeMember(member) + " missing from its own group");
    }

    private Map<Integer, LocalGroup> buildSplit(LocalGroup.Rendezvous rv, String name) {
        Map<Integer, List<int[]>> byColor = new HashMap<>();
        for (int m = 0; m < group.size(); m++) {
            int[] colorKey = (int[]) rv.payloads[m];
            if (colorKey[0] >= 0) {
                byColor.computeIfAbsent(colorKey[0], c -> new ArrayList<>()).add(new int[] {colorKey[1], m});
            }
        }
        Map<Integer, LocalGroup> groups = new HashMap<>();
        byColor.forEach((color, entries) -> {
            entries.sort(Comparator.<int[]>comparingInt(e -> e[0]).thenComparingInt(e -> e[1]));
            int[] ranks = entries.stream().mapToInt(e -> group.globalRank(e[1])).toArray();
            groups.put(color, group.fabric().newGroup(name, ranks));
        });
        return groups;
    }

    // ---------------------------------------------------------------- point to point

    @Override
    public CommHandle sendAsync(Tensor tensor, int peer) {
        requirePeer("send", tensor, peer);
        synchronized (issueLock) {
            long seq = sendSeq[peer]++;
            return issue("send", seq, true, () -> send(seq, tensor, peer));
        }
    }

    @Override
    public void send(Tensor tensor, int peer) {
        requirePeer("send", tensor, peer);
        synchronized (issueLock) {
            long seq = sendSeq[peer]++;
            issue("send", seq, false, () -> send(seq, tensor, peer));
        }
    }

    private void send(long seq, Tensor tensor, int peer) {
        MemorySegment copy = HostBuffers.scratch(tensor.byteSize());
        MemorySegment.copy(tensor.segment(), 0, copy, 0, tensor.byteSize());
        group.post(member, peer, new LocalGroup.Message(seq, tensor.dtype(), tensor.shape(), copy));
    }

    @Override
    public CommHandle recvAsync(Tensor tensor, int peer) {
        requirePeer("recv", tensor, peer);
        synchronized (issueLock) {
            long seq = recvSeq[peer]++;
            requireUsable("recv", seq);
            if (recvStream == null) {
                recvStream = Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon()
                        .name("comm-recv-" + group.name() + "-" + group.globalRank(member)).factory());
            }
            return new FutureHandle(CompletableFuture.runAsync(() -> recv(seq, tensor, peer), recvStream));
        }
    }

    @Override
    public void recv(Tensor tensor, int peer) {
        recvAsync(tensor, peer).await();
    }

    private void recv(long seq, Tensor tensor, int peer) {
        try {
            LocalGroup.Message message = group.take(peer, member, seq);
            if (message.dtype() != tensor.dtype() || message.data().byteSize() != tensor.byteSize()) {
                throw new CommException("recv #" + seq + " on group '" + group.name() + "' at " + describeMember(member)
                        + ": " + describeMember(peer) + " sent " + message.dtype() + Tensor.shapeString(message.shape())
                        + " but the receiving tensor is " + tensor.dtype() + Tensor.shapeString(tensor.shape()));
            }
            MemorySegment.copy(message.data(), 0, tensor.segment(), 0, tensor.byteSize());
        } catch (RuntimeException e) {
            failure = e;
            throw e;
        }
    }

    // ---------------------------------------------------------------- checks

    private void requireHost(String op, Tensor t) {
        if (!t.device().isHost()) {
            throw new CommException(op + " at " + describeMember(member) + ": " + t
                    + " is not in host memory; LocalCommunicator moves host tensors only");
        }
        if (!t.isAlive()) {
            throw new CommException(op + " at " + describeMember(member) + ": " + t + " was freed (its arena is closed)");
        }
    }

    /** {@code whole} holds exactly size x {@code part}'s elements, same dtype. */
    private void requireScatterShapes(String op, Tensor part, Tensor whole) {
        requireHost(op, part);
        requireHost(op, whole);
        if (part.dtype() != whole.dtype() || whole.numel() != part.numel() * group.size()) {
            throw new CommException(op + " on group '" + group.name() + "' at " + describeMember(member) + ": "
                    + whole + " must hold " + group.size() + " x the elements of " + part + " in the same dtype");
        }
    }

    private void requireBroadcast(Tensor tensor, int root) {
        requireHost("broadcast", tensor);
        if (root < 0 || root >= group.size()) {
            throw new CommException("broadcast on group '" + group.name() + "' at " + describeMember(member)
                    + ": root " + root + " is not a member index in [0, " + group.size() + ")");
        }
    }

    private void requirePeer(String op, Tensor tensor, int peer) {
        requireHost(op, tensor);
        if (peer < 0 || peer >= group.size() || peer == member) {
            throw new CommException(op + " on group '" + group.name() + "' at " + describeMember(member) + ": peer " + peer
                    + " must be another member index in [0, " + group.size() + ")");
        }
    }

    /** After arrival: every member passed the same dtype, element count, reduction and root as member 0. */
    private void requireMatching(LocalGroup.Rendezvous rv, boolean checkSecond) {
        Payload first = (Payload) rv.payloads[0];
        for (int m = 1; m < rv.payloads.length; m++) {
            Payload p = (Payload) rv.payloads[m];
            boolean same = p.a().dtype() == first.a().dtype() && p.a().numel() == first.a().numel()
                    && p.op() == first.op() && p.root() == first.root()
                    && (!checkSecond || p.b().numel() == first.b().numel());
            if (!same) {
                throw new CommException(group.label(rv.op, rv.seq) + ": " + describeMember(0) + " passed " + first.a()
                        + (first.op() != null ? " " + first.op() : "") + " but " + describeMember(m) + " passed " + p.a()
                        + (p.op() != null ? " " + p.op() : "")
                        + (rv.op.equals("broadcast") ? " (roots " + first.root() + " and " + p.root() + ")" : "")
                        + ": members must pass tensors of the same dtype and size");
            }
        }
    }

    private static MemorySegment[] segmentsA(LocalGroup.Rendezvous rv) {
        MemorySegment[] s = new MemorySegment[rv.payloads.length];
        for (int k = 0; k < s.length; k++) {
            s[k] = ((Payload) rv.payloads[k]).a().segment();
        }
        return s;
    }

    @Override
    public void close() {
        synchronized (issueLock) {
            if (closed) {
                return;
            }
            drain();
            closed = true;
            for (ExecutorService s : new ExecutorService[] {stream, recvStream}) {
                if (s != null) {
                    s.shutdown();
                    try {
                        s.awaitTermination(group.fabric().timeout().toMillis(), TimeUnit.MILLISECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        }
    }

    @Override
    public String toString() {
        return "LocalCommunicator[" + group.name() + ", member " + member + " of " + group.size() + ", "
                + describeMember(member) + "]";
    }
}
