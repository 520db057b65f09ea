package org.megatronj.memory.cpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class CpuThreadsTest {
    private static final CpuThreads THREADS = new CpuThreads(3);

    @AfterAll
    static void close() {
        THREADS.close();
    }

    /** A body that counts each index it is given. */
    private static CpuThreads.RangeBody counting(AtomicIntegerArray hits) {
        return (from, to) -> {
            for (long i = from; i < to; i++) {
                hits.incrementAndGet((int) i);
            }
        };
    }

    private static void assertCoveredOnce(AtomicIntegerArray hits) {
        for (int i = 0; i < hits.length(); i++) {
            assertEquals(1, hits.get(i), "index " + i);
        }
    }

    @Test
    void everyIndexRunsExactlyOnce() {
        for (int n : new int[] {0, 1, 2, 5, 97, 1000}) {
            for (int grain : new int[] {1, 7, 2000}) {
                AtomicIntegerArray hits = new AtomicIntegerArray(n);
                THREADS.parallelFor(n, grain, counting(hits));
                assertCoveredOnce(hits);
            }
        }
    }

    @Test
    void nestedCallsRunInlineAndCallsFromOtherPoolsStillWork() throws Exception {
        AtomicIntegerArray hits = new AtomicIntegerArray(64 * 64);
        THREADS.parallelFor(64, 1, (a0, a1) -> {
            for (long a = a0; a < a1; a++) {
                long row = a;
                THREADS.parallelFor(64, 1, (b0, b1) -> { // from our own worker: runs inline
                    for (long b = b0; b < b1; b++) {
                        hits.incrementAndGet((int) (row * 64 + b));
                    }
                });
            }
        });
        assertCoveredOnce(hits);

        AtomicIntegerArray fromCommonPool = new AtomicIntegerArray(500);
        ForkJoinPool.commonPool().submit(() -> THREADS.parallelFor(500, 1, counting(fromCommonPool))).get();
        assertCoveredOnce(fromCommonPool);
    }

    @Test
    void severalCallersAtOnceShareTheWorkers() throws Exception {
        Thread[] callers = new Thread[4];
        AtomicIntegerArray[] hits = new AtomicIntegerArray[callers.length];
        Throwable[] failures = new Throwable[callers.length];
        for (int t = 0; t < callers.length; t++) {
            int caller = t;
            hits[t] = new AtomicIntegerArray(300 * 40);
            callers[t] = new Thread(() -> {
                try {
                    for (int call = 0; call < 300; call++) {
                        int base = call * 40;
                        THREADS.parallelFor(40, 1, (from, to) -> {
                            for (long i = from; i < to; i++) {
                                hits[caller].incrementAndGet(base + (int) i);
                            }
                        });
                    }
                } catch (Throwable e) {
                    failures[caller] = e;
                }
            });
            callers[t].start();
        }
        for (int t = 0; t < callers.length; t++) {
            callers[t].join(60_000);
            assertEquals(null, failures[t], "caller " + t);
            assertCoveredOnce(hits[t]);
        }
    }

    @Test
    void idleWorkersParkAndWakeForTheNextCall() throws Exception {
        AtomicIntegerArray hits = new AtomicIntegerArray(8);
        Thread.sleep(CpuThreads.SPIN_NANOS / 1_000_000 + 20); // past the polling window: workers are parked
        THREADS.parallelFor(8, 1, counting(hits));
        assertCoveredOnce(hits);
    }

    @Test
    void aClosedPoolStillRunsWorkOnTheCaller() {
        CpuThreads pool = new CpuThreads(2);
        pool.close();
        AtomicIntegerArray hits = new AtomicIntegerArray(10);
        pool.parallelFor(10, 1, counting(hits));
        assertCoveredOnce(hits);
    }

    @Test
    void exceptionsReachTheCaller() {
        // repeated: which thread runs and which joins the failing chunk varies from call to call
        for (int attempt = 0; attempt < 200; attempt++) {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> THREADS.parallelFor(100, 1, (from, to) -> {
                if (from <= 50 && 50 < to) {
                    throw new IllegalStateException("bad element 50");
                }
            }));
            // the original exception, whichever thread ran the failing chunk
            assertEquals("bad element 50", e.getMessage(), "attempt " + attempt);
        }
    }
}
