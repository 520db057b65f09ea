package org.megatronj.parallel.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.megatronj.parallel.comm.LocalWorld;
import org.megatronj.parallel.optim.ParallelGradients;

/** Megatron's "(min, max) time across ranks" report: one rank, and ranks as threads. */
class TimersTest {
    private static final Pattern LINE = Pattern.compile("    (\\S+) \\.+: \\((\\d+\\.\\d\\d), (\\d+\\.\\d\\d)\\)");

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    private static double[] minMax(String report, String name) {
        Matcher m = LINE.matcher(report);
        while (m.find()) {
            if (m.group(1).equals(name)) {
                return new double[] {Double.parseDouble(m.group(2)), Double.parseDouble(m.group(3))};
            }
        }
        throw new AssertionError(name + " is not in: " + report);
    }

    @Test
    void oneRankReportsItsTimeAsMinAndMaxAndSkipsTimersThatDidNotRun() {
        Timers timers = new Timers(1);
        Timers.Timer t = timers.timer("forward-backward", 1);
        t.start();
        sleep(5);
        t.stop();
        timers.timer("optimizer", 1);   // created, never started
        timers.timer("batch-generator", 2).start();   // above the level: costs nothing, never shown
        String report = timers.log(List.of("forward-backward", "optimizer", "batch-generator"), 1);
        assertTrue(report.startsWith("(min, max) time across ranks (ms):\n"), report);
        double[] fb = minMax(report, "forward-backward");
        assertEquals(fb[0], fb[1]);
        assertTrue(fb[0] >= 5, report);
        assertEquals(1, report.lines().count() - 1, report);
        assertEquals("", timers.log(List.of("forward-backward"), 1), "the log resets what it reported");
    }

    /** Rank 1 is 80 ms slower: the report shows rank 0's time as the min and rank 1's as the max. */
    @Test
    void ranksAsThreadsReportTheFastestAndTheSlowestRank() {
        AtomicReference<String> report = new AtomicReference<>();
        LocalWorld.run(2, ctx -> {
            Timers timers = new Timers(2);
            Timers.Timer t = timers.timer("forward-backward", 1);
            t.start();
            sleep(ctx.rank() == 1 ? 80 : 0);
            t.stop();
            Timers.Timer only = timers.timer("optimizer-clip-main-grad", 2);
            if (ctx.rank() == 1) {   // a timer that ran on one rank only counts that rank
                only.start();
                sleep(20);
                only.stop();
            }
            String r = timers.log(List.of("forward-backward", "optimizer-clip-main-grad"), 1,
                    v -> ParallelGradients.allGather(ctx.groups().world(), v), Timers.LogOption.MINMAX);
            if (ctx.rank() == 0) {
                report.set(r);
            }
        });
        double[] fb = minMax(report.get(), "forward-backward");
        assertTrue(fb[0] < 40 && fb[1] >= 80, report.get());
        double[] clip = minMax(report.get(), "optimizer-clip-main-grad");
        assertEquals(clip[0], clip[1], report.get());
        assertTrue(clip[0] >= 20, report.get());
    }

    /** --timing-log-option: Megatron's three layouts of the same times (ranks where a timer did not run left out). */
    @Test
    void logOptionsLayTheRanksOutAsMegatron() {
        java.util.Map<String, double[]> times = new java.util.LinkedHashMap<>();
        times.put("forward-backward", new double[] {812.314, 799.5});
        times.put("optimizer", new double[] {0, 12.25});
        assertEquals("max time across ranks (ms):\n    forward-backward ...............................: 812.31\n"
                + "    optimizer ......................................: 12.25", Timers.format(times, Timers.LogOption.MAX));
        assertEquals("(min, max) time across ranks (ms):\n    forward-backward ...............................: (799.50, 812.31)\n"
                + "    optimizer ......................................: (12.25, 12.25)", Timers.format(times, Timers.LogOption.MINMAX));
        assertEquals("times across ranks (ms):\n  forward-backward:\n     rank  0: 812.31\n     rank  1: 799.50\n  optimizer:\n"
                + "     rank  1: 12.25", Timers.format(times, Timers.LogOption.ALL));
        assertEquals("", Timers.format(java.util.Map.of(), Timers.LogOption.ALL));
        var e = assertThrows(IllegalArgumentException.class, () -> Timers.LogOption.parse("min"));
        assertTrue(e.getMessage().contains("--timing-log-option"), e.getMessage());
    }
}
