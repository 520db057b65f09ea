package org.megatronj.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.text.ParseException;

import jdk.jfr.Configuration;
import jdk.jfr.Recording;
import org.megatronj.parallel.train.StepProfiler;

/**
 * {@code --profile}: a Java Flight Recording of the JVM's default events and every Megatron-J training event
 * ({@code org.megatronj.TrainStep}, ...), over the whole run or, as Megatron profiles, over the iterations
 * {@code --profile-step-start} + 1 to {@code --profile-step-end}. One process records all ranks (each on its
 * thread {@code rank-N}).
 */
final class JfrProfile implements StepProfiler, AutoCloseable {
    private static final String[] EVENTS = {"TrainStep", "ForwardBackward", "OptimizerStep", "DataWait", "CheckpointSave",
            "Evaluation"};

    private final Recording recording;
    private final PrintWriter out;
    private final long start;
    private final long end;

    /**
     * @param start the iterations completed when the recording starts, or -1 to record from now to the end
     * @param end   the iteration after which it stops
     */
    private JfrProfile(Path file, long start, long end, PrintWriter out) {
        try {
            this.recording = new Recording(Configuration.getConfiguration("default"));
        } catch (IOException | ParseException e) {
            throw new IllegalStateException("the JVM's default JFR configuration cannot be read: " + e.getMessage(), e);
        }
        for (String e : EVENTS) {
            recording.enable("org.megatronj." + e);
        }
        recording.setName("megatron-pretrain");
        try {
            Path folder = file.toAbsolutePath().getParent();
            if (folder != null) {
                java.nio.file.Files.createDirectories(folder);   // --tensorboard-dir, made before TensorBoard makes it
            }
            recording.setDestination(file);
        } catch (IOException e) {
            throw new UncheckedIOException("--profile: cannot write " + file + ": " + e.getMessage(), e);
        }
        this.out = out;
        this.start = start;
        this.end = end;
        if (start < 0) {
            begin();
        }
    }

    /** The profile {@code --profile} asks for, or null. */
    static JfrProfile of(TrainingOptions.Profile profile, PrintWriter out) {
        return profile == null ? null : new JfrProfile(profile.file(), profile.window() ? profile.stepStart() : -1,
                profile.stepEnd(), out);
    }

    private void begin() {
        recording.start();
        out.println("> recording JFR events to " + recording.getDestination()
                + (start < 0 ? "" : " (iterations " + (start + 1) + " to " + end + ")"));
    }

    @Override
    public void beforeIteration(long completed) {
        if (completed == start && recording.getState() == jdk.jfr.RecordingState.NEW) {
            begin();
        }
    }

    @Override
    public void afterIteration(long completed) {
        if (start >= 0 && completed == end && recording.getState() == jdk.jfr.RecordingState.RUNNING) {
            finish();
        }
    }

    private void finish() {
        recording.stop();   // writes the destination
        Path file = recording.getDestination();
        out.println("profile written to " + file + " (read it with: jfr summary " + file + "; jfr print --events"
                + " org.megatronj.TrainStep " + file + ")");
    }

    @Override
    public void close() {
        if (recording.getState() == jdk.jfr.RecordingState.RUNNING) {
            finish();
        }
        recording.close();
    }
}
