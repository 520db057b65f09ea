package org.megatronj.parallel.comm;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.megatronj.memory.DType;

/**
 * The shared half of one group of {@link LocalCommunicator}s: the rendezvous of each collective
 * (by sequence number) and the point-to-point mailboxes. One lock guards it; waiting ranks sleep
 * on one condition with the group's timeout.
 */
final class LocalGroup {
    /** Phases of a collective: everyone arrived (inputs posted), everyone finished reading inputs. */
    static final int ARRIVAL = 0;
    static final int COMPLETION = 1;

    private final LocalFabric fabric;
    private final String name;
    private final int[] members;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final Map<Long, Rendezvous> open = new HashMap<>();
    private final Map<Long, ArrayDeque<Message>> mailboxes = new HashMap<>();

    LocalGroup(LocalFabric fabric, String name, int[] members) {
        this.fabric = fabric;
        this.name = name;
        this.members = members.clone();
    }

    LocalFabric fabric() {
        return fabric;
    }

    String name() {
        return name;
    }

    int size() {
        return members.length;
    }

    int globalRank(int member) {
        return members[member];
    }

    String describeMember(int member) {
        return fabric.describeRank(members[member]);
    }

    /** "allReduce #3 on group 'tp' [0, 1]". */
    String label(String op, long seq) {
        return op + " #" + seq + " on group '" + name + "' " + Arrays.toString(members);
    }

    void wakeAll() {
        lock.lock();
        try {
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    // ---------------------------------------------------------------- collectives

    /** One collective in progress: what each member posted and who has passed each phase. */
    static final class Rendezvous {
        final long seq;
        final String op;
        final int firstMember;
        final Object[] payloads;
        final MemorySegment[] results;
        final boolean[][] passed;
        final int[] counts = new int[2];
        int left;
        Object shared;

        Rendezvous(long seq, String op, int firstMember, int size) {
            this.seq = seq;
            this.op = op;
            this.firstMember = firstMember;
            this.payloads = new Object[size];
            this.results = new MemorySegment[size];
            this.passed = new boolean[2][size];
        }
    }

    /** Posts this member's payload for collective {@code seq} and marks its arrival. */
    Rendezvous arrive(String op, long seq, int member, Object payload) {
        lock.lock();
        try {
            Rendezvous rv = open.computeIfAbsent(seq, s -> new Rendezvous(s, op, member, members.length));
            if (!rv.op.equals(op)) {
                throw new CommException(describeMember(member) + " issued " + label(op, seq) + " but "
                        + describeMember(rv.firstMember) + " issued " + rv.op + " as operation #" + seq
                        + ": every member must issue the same collectives in the same order");
            }
            rv.payloads[member] = payload;
            markLocked(rv, ARRIVAL, member);
            return rv;
        } finally {
            lock.unlock();
        }
    }

    /** Marks that {@code member} passed {@code phase} (after writing what others may read). */
    void mark(Rendezvous rv, int phase, int member) {
        lock.lock();
        try {
            markLocked(rv, phase, member);
        } finally {
            lock.unlock();
        }
    }

    private void markLocked(Rendezvous rv, int phase, int member) {
        if (!rv.passed[phase][member]) {
            rv.passed[phase][member] = true;
            if (++rv.counts[phase] == members.length) {
                changed.signalAll();
            }
        }
    }

    /** Waits until every member passed {@code phase}; times out naming who did and who did not. */
    void await(Rendezvous rv, int phase, int member) {
        long timeoutNanos = fabric.timeout().toNanos();
        long deadline = System.nanoTime() + timeoutNanos;
        lock.lock();
        try {
            while (rv.counts[phase] < members.length) {
                fabric.checkAborted(label(rv.op, rv.seq) + " at " + describeMember(member));
                long remaining = deadline - System.nanoTime();
                if (remaining <= 0) {
                    throw timeout(rv, phase, member);
                }
                changed.awaitNanos(remaining);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommException(label(rv.op, rv.seq) + " at " + describeMember(member) + " interrupted", e);
        } finally {
            lock.unlock();
        }
    }

    private CollectiveTimeoutException timeout(Rendezvous rv, int phase, int member) {
        List<String> arrived = new ArrayList<>();
        List<String> missing = new ArrayList<>();
        for (int m = 0; m < members.length; m++) {
            (rv.passed[phase][m] ? arrived : missing).add(describeMember(m));
        }
        String waitingFor = phase == ARRIVAL ? "all ranks to arrive" : "all ranks to finish reading their inputs";
        return new CollectiveTimeoutException(label(rv.op, rv.seq) + " timed out after " + fabric.timeout().toMillis()
                + " ms at " + describeMember(member) + " waiting for " + waitingFor + "; arrived: " + arrived
                + "; missing: " + missing, rv.op, rv.seq, arrived, missing);
    }

    /** Computes a value once per collective (the first member to ask computes it under the lock). */
    Object shared(Rendezvous rv, java.util.function.Supplier<Object> compute) {
        lock.lock();
        try {
            if (rv.shared == null) {
                rv.shared = compute.get();
            }
            return rv.shared;
        } finally {
            lock.unlock();
        }
    }

    /** This member is done with the collective; the last one out forgets it. */
    void leave(Rendezvous rv) {
        lock.lock();
        try {
            if (++rv.left == members.length) {
                open.remove(rv.seq);
            }
        } finally {
            lock.unlock();
        }
    }

    // ---------------------------------------------------------------- point to point

    /** A sent tensor, copied at send time so the sender may reuse its buffer. */
    record Message(long seq, DType dtype, long[] shape, MemorySegment data) {
    }

    private long mailboxKey(int src, int dst) {
        return (long) src * members.length + dst;
    }

    void post(int src, int dst, Message message) {
        lock.lock();
        try {
            mailboxes.computeIfAbsent(mailboxKey(src, dst), k -> new ArrayDeque<>()).addLast(message);
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Takes the next message from {@code src} to {@code dst}, waiting up to the timeout. */
    Message take(int src, int dst, long seq) {
        long deadline = System.nanoTime() + fabric.timeout().toNanos();
        String what = "recv #" + seq + " on group '" + name + "' " + Arrays.toString(members) + " from " + describeMember(src)
                + " at " + describeMember(dst);
        lock.lock();
        try {
            ArrayDeque<Message> box = mailboxes.computeIfAbsent(mailboxKey(src, dst), k -> new ArrayDeque<>());
            while (box.isEmpty()) {
                fabric.checkAborted(what);
                long remaining = deadline - System.nanoTime();
                if (remaining <= 0) {
                    throw new CollectiveTimeoutException(what + " timed out after " + fabric.timeout().toMillis()
                            + " ms: " + describeMember(src) + " has not sent its message #" + seq + " to this rank",
                            "recv", seq, List.of(describeMember(dst)), List.of(describeMember(src)));
                }
                changed.awaitNanos(Math.min(remaining, TimeUnit.SECONDS.toNanos(1)));
            }
            return box.removeFirst();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommException(what + " interrupted", e);
        } finally {
            lock.unlock();
        }
    }
}
