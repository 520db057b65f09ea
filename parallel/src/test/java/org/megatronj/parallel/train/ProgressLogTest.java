package org.megatronj.parallel.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Megatron's progress.txt: its lines, and the cumulative throughput since the first job of this world size. */
class ProgressLogTest {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");

    @TempDir
    Path dir;

    @Test
    void appendsMegatronsLinesAndCountsThroughputFromTheFirstJobOfThisWorldSize() throws IOException {
        LocalDateTime now = LocalDateTime.now();
        // an earlier history: a 4-rank job, then the 2-rank jobs this one continues (the first started 100 s ago)
        Files.writeString(dir.resolve("progress.txt"), String.join("\n",
                now.minusSeconds(500).format(TIME) + "\tJob ID: 7\t# GPUs: 4\tStarting job",
                now.minusSeconds(400).format(TIME) + "\tJob ID: 7\t# GPUs: 4\tSaved checkpoint\tIteration: 10\tJob throughput: 1.0"
                        + " TFLOP/s/GPU\tCumulative throughput: 1.0 TFLOP/s/GPU\tFloating-point operations: 1.00e+15\tTokens (in"
                        + " billions): 0.01",
                now.minusSeconds(100).format(TIME) + "\tJob ID: 8\t# GPUs: 2\tStarting job",
                now.minusSeconds(50).format(TIME) + "\tJob ID: 8\t# GPUs: 2\tSaving async checkpoint\tIteration: 20\tJob"
                        + " throughput: 1.0 TFLOP/s/GPU\tCumulative throughput: 1.0 TFLOP/s/GPU\tFloating-point operations:"
                        + " 2.00e+15\tTokens (in billions): 0.02",
                now.minusSeconds(40).format(TIME) + "\tJob ID: 8\t# GPUs: 2\tSaved async checkpoint\tIteration: 20") + "\n");
        ProgressLog log = new ProgressLog(dir, 2, 1024);
        log.startingJob();
        log.trainingStarts(2e15);
        log.savedCheckpoint(new ResumePoint(30, 3_000_000, 0, 1, 1e16 + 1e15), false);
        log.savedCheckpoint(new ResumePoint(40, 4_000_000, 0, 1, 2e16), true);
        log.savedAsyncCheckpoint(40);
        List<String> lines = Files.readAllLines(dir.resolve("progress.txt"));
        assertEquals(9, lines.size());
        assertTrue(lines.get(5).matches("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\tJob ID: [^\\t]*\\t# GPUs: 2\\tStarting job"),
                lines.get(5));
        String[] saved = lines.get(6).split("\t");
        assertEquals(List.of("Saved checkpoint", "Iteration: 30", "Floating-point operations: 1.10e+16",
                "Tokens (in billions): 3.07"), List.of(saved[3], saved[4], saved[7], saved[8]));
        // cumulative: (1.1e16 - 1e15, the FLOPs committed before the first 2-rank job) over ~100 s and 2 ranks: ~50
        double cumulative = Double.parseDouble(saved[6].replaceAll("Cumulative throughput: ([0-9.]+) TFLOP/s/GPU", "$1"));
        assertTrue(cumulative > 45 && cumulative <= 51, saved[6]);
        assertTrue(saved[5].matches("Job throughput: [0-9.]+(E[0-9]+)? TFLOP/s/GPU|Job throughput: inf TFLOP/s/GPU"), saved[5]);
        assertTrue(lines.get(7).contains("\tSaving async checkpoint\tIteration: 40\t"), lines.get(7));
        assertTrue(lines.get(8).endsWith("\t# GPUs: 2\tSaved async checkpoint\tIteration: 40"), lines.get(8));
    }
}
