package org.megatronj.parallel.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;

/**
 * Megatron's {@code --log-progress}: {@code <save>/progress.txt}, one tab-separated line per event (job start, checkpoint
 * saved) with the date, the job id ({@code SLURM_JOB_ID}), the ranks, and at each save the job's and the cumulative
 * throughput (since the first job of this world size in the file), the model FLOPs and tokens so far. Written by rank 0,
 * appended across jobs, so a run's resumes read as one history.
 */
public final class ProgressLog {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");

    private final Path file;
    private final int worldSize;
    private final int seqLength;
    private final long jobStartNanos = System.nanoTime();
    private double jobStartFlops = Double.NaN;

    /** The log in {@code saveDir}; {@code seqLength} turns consumed samples into tokens. */
    public ProgressLog(Path saveDir, int worldSize, int seqLength) {
        this.file = saveDir.resolve("progress.txt");
        this.worldSize = worldSize;
        this.seqLength = seqLength;
    }

    /** "Starting job", at the start of a run (before its checkpoint is loaded). */
    public void startingJob() {
        append("Starting job");
    }

    /**
     * A save of {@code state} (its FLOPs and samples so far): "Saved checkpoint", or with {@code --async-save} "Saving async
     * checkpoint" when it is started.
     */
    void savedCheckpoint(ResumePoint state, boolean async) {
        double flops = state.floatingPointOperationsSoFar();
        double jobSeconds = (System.nanoTime() - jobStartNanos) / 1e9;
        double jobThroughput = (flops - jobStartFlops) / (jobSeconds * 1e12 * worldSize);
        Start start = firstJobOfThisWorldSize();
        double cumulativeSeconds = Duration.between(start.time(), LocalDateTime.now()).toMillis() / 1000.0;
        double cumulative = (flops - start.flops()) / (cumulativeSeconds * 1e12 * worldSize);
        append(String.format(Locale.ROOT, "%s\tIteration: %d\tJob throughput: %s TFLOP/s/GPU\tCumulative throughput: %s"
                        + " TFLOP/s/GPU\tFloating-point operations: %s\tTokens (in billions): %s",
                async ? "Saving async checkpoint" : "Saved checkpoint", state.iteration(), TrainingLog.pythonF(jobThroughput, 1),
                TrainingLog.pythonF(cumulative, 1), TrainingLog.pythonE(flops, 2).toLowerCase(Locale.ROOT),
                TrainingLog.pythonF(state.consumedTrainSamples() * (double) seqLength / 1e9, 2)));
    }

    /** A checkpoint deleted by {@code --save-retain-interval}. */
    public void deletedCheckpoint(long iteration) {
        append("Deleted checkpoint\tIteration: " + iteration);
    }

    /** An async save published. */
    void savedAsyncCheckpoint(long iteration) {
        append("Saved async checkpoint\tIteration: " + iteration);
    }

    /** The FLOPs the run had done when this job's training began (the loaded checkpoint's). */
    void trainingStarts(double flopsSoFar) {
        jobStartFlops = flopsSoFar;
    }

    private record Start(LocalDateTime time, double flops) {
    }

    /**
     * As Megatron's {@code get_start_time_from_progress_log}: the start of the earliest job of this world size since the
     * last job of another, and the FLOPs of the last checkpoint committed before it.
     */
    private Start firstJobOfThisWorldSize() {
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("--log-progress: cannot read " + file + ": " + e.getMessage(), e);
        }
        LocalDateTime start = null;
        double startFlops = 0, committed = 0, uncommitted = Double.NaN;
        for (String line : lines) {
            String[] t = line.strip().split("\t");
            if (t.length < 4) {
                throw new IllegalStateException("--log-progress: " + file + " has a line that is not Megatron's progress log: '"
                        + line + "'");
            }
            switch (t[3]) {
                case "Saved checkpoint" -> committed = field(t, 7, line);
                case "Saving async checkpoint" -> uncommitted = field(t, 7, line);
                case "Saved async checkpoint" -> {
                    if (!Double.isNaN(uncommitted)) {
                        committed = uncommitted;
                        uncommitted = Double.NaN;
                    }
                }
                default -> { }
            }
            if ((int) field(t, 2, line) != worldSize) {
                start = null;   // another world size: the throughput starts again after it
                continue;
            }
            if (t[3].equals("Starting job") && start == null) {
                start = LocalDateTime.parse(t[0], TIME);
                startFlops = committed;
            }
        }
        if (start == null) {
            throw new IllegalStateException("--log-progress: " + file + " has no 'Starting job' line for " + worldSize + " ranks");
        }
        return new Start(start, startFlops);
    }

    private double field(String[] tokens, int index, String line) {
        try {
            return Double.parseDouble(tokens[index].substring(tokens[index].indexOf(": ") + 2));
        } catch (RuntimeException e) {
            throw new IllegalStateException("--log-progress: " + file + ": field " + (index + 1) + " of '" + line
                    + "' is not a 'name: number' pair", e);
        }
    }

    private void append(String event) {
        String jobId = System.getenv().getOrDefault("SLURM_JOB_ID", "");
        String line = LocalDateTime.now().format(TIME) + "\tJob ID: " + jobId + "\t# GPUs: " + worldSize + "\t" + event + "\n";
        try {
            Files.createDirectories(file.getParent());
            Files.writeString(file, line, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new UncheckedIOException("--log-progress: cannot append to " + file + ": " + e.getMessage(), e);
        }
    }
}
