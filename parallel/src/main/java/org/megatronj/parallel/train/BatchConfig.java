package org.megatronj.parallel.train;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

/**
 * Batch sizes: {@code --micro-batch-size}, {@code --global-batch-size} and an optional schedule of the
 * global batch size ({@code --rampup-batch-size} or {@code --step-batch-size-schedule}). The global
 * batch is made of {@code global / (micro * dp)} micro-batches per rank whose gradients accumulate
 * before the step.
 *
 * @param globalBatchSize the global batch size; with a {@link StepSchedule}, Megatron's
 *        {@code args.global_batch_size} = micro x data-parallel size, which its iteration-based
 *        learning-rate clock and evaluation batches use
 * @param schedule null for a constant global batch size
 */
public record BatchConfig(int microBatchSize, int globalBatchSize, int dataParallelSize, BatchSchedule schedule) {

    /** How the global batch size follows the consumed samples. */
    public sealed interface BatchSchedule permits Rampup, StepSchedule {
        /** The global batch size after {@code consumedSamples}, given the configured {@code globalBatchSize}. */
        int globalBatchSizeAt(long consumedSamples, int globalBatchSize);

        /** Every global batch size the schedule takes. */
        IntStream batchSizes(int globalBatchSize);

        /** The flag and its value, as given. */
        String flag();
    }

    /** {@code --rampup-batch-size start increment samples}: the global batch grows from start by increment over samples. */
    public record Rampup(int startBatchSize, int batchSizeIncrement, long rampupSamples) implements BatchSchedule {

        /**
         * Megatron's {@code RampupBatchsizeNumMicroBatches}: start + increment per
         * {@code samples / num_increments} samples.
         */
        @Override
        public int globalBatchSizeAt(long consumedSamples, int globalBatchSize) {
            if (consumedSamples > rampupSamples) {
                return globalBatchSize;
            }
            int increments = (globalBatchSize - startBatchSize) / batchSizeIncrement;
            if (increments == 0) {
                return globalBatchSize;
            }
            double samplesPerIncrement = (double) rampupSamples / increments;
            long steps = (long) (consumedSamples / samplesPerIncrement);
            return (int) Math.min(globalBatchSize, startBatchSize + steps * batchSizeIncrement);
        }

        @Override
        public IntStream batchSizes(int globalBatchSize) {
            return IntStream.iterate(startBatchSize, b -> b <= globalBatchSize, b -> b + batchSizeIncrement);
        }

        @Override
        public String flag() {
            return "--rampup-batch-size " + startBatchSize + " " + batchSizeIncrement + " " + rampupSamples;
        }

        void check(int perStep, int globalBatchSize) {
            if (startBatchSize < 1 || startBatchSize % perStep != 0) {
                throw new IllegalArgumentException("--rampup-batch-size start (" + startBatchSize
                        + ") must be a positive multiple of micro batch x data-parallel size (" + perStep + ")");
            }
            if (batchSizeIncrement < 1 || batchSizeIncrement % perStep != 0) {
                throw new IllegalArgumentException("--rampup-batch-size increment (" + batchSizeIncrement
                        + ") must be a positive multiple of micro batch x data-parallel size (" + perStep + ")");
            }
            int diff = globalBatchSize - startBatchSize;
            if (diff < 0 || diff % batchSizeIncrement != 0) {
                throw new IllegalArgumentException("--global-batch-size (" + globalBatchSize + ") minus the ramp-up start ("
                        + startBatchSize + ") must be a non-negative multiple of the increment (" + batchSizeIncrement + ")");
            }
            if (rampupSamples < 0) {
                throw new IllegalArgumentException("--rampup-batch-size samples must be >= 0, got " + rampupSamples);
            }
        }
    }

    /**
     * {@code --step-batch-size-schedule "THRESHOLD:BS ..."} (Megatron's {@code StepBatchsizeNumMicroBatchesCalculator}):
     * the global batch size is BS from THRESHOLD on, thresholds given in tokens and kept in samples
     * ({@code tokens // seq_length}), sorted.
     *
     * @param steps (threshold in samples, global batch size), thresholds strictly increasing from 0
     * @param text the flag's value as given
     */
    public record StepSchedule(List<long[]> steps, String text) implements BatchSchedule {

        /**
         * Parses Megatron's format: entries {@code THRESHOLD:BS} separated by spaces or commas, numbers with an
         * optional suffix K, M, B or T (1e3 .. 1e12) read as {@code int(float(x) * multiplier)}.
         */
        public static StepSchedule parse(String text, int seqLength) {
            List<long[]> steps = new ArrayList<>();
            for (String entry : text.strip().replace(',', ' ').split("\\s+")) {
                int colon = entry.indexOf(':');
                if (colon < 0) {
                    throw new IllegalArgumentException("--step-batch-size-schedule: invalid entry \"" + entry
                            + "\"; expected THRESHOLD:BATCH_SIZE, e.g. \"0:768 250B:1536\"");
                }
                long threshold = number(entry, entry.substring(0, colon)) / seqLength;   // tokens -> samples
                long batch = number(entry, entry.substring(colon + 1));
                if (batch < 1 || batch > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("--step-batch-size-schedule: entry \"" + entry
                            + "\" has batch size " + batch + "; expected a positive batch size");
                }
                steps.add(new long[] {threshold, batch});
            }
            steps.sort(Comparator.comparingLong(s -> s[0]));
            if (steps.getFirst()[0] != 0) {
                throw new IllegalArgumentException("--step-batch-size-schedule \"" + text + "\": the first threshold must be 0,"
                        + " got " + steps.getFirst()[0] + " samples");
            }
            for (int i = 1; i < steps.size(); i++) {
                if (steps.get(i)[0] <= steps.get(i - 1)[0]) {
                    throw new IllegalArgumentException("--step-batch-size-schedule \"" + text + "\": thresholds must be"
                            + " strictly increasing in samples (tokens // --seq-length " + seqLength + "), got "
                            + steps.get(i - 1)[0] + " before " + steps.get(i)[0]);
                }
            }
            return new StepSchedule(List.copyOf(steps), text);
        }

        private static long number(String entry, String value) {
            String v = value.strip().toUpperCase(java.util.Locale.ROOT);
            long multiplier = 1;
            char last = v.isEmpty() ? ' ' : v.charAt(v.length() - 1);
            switch (last) {
                case 'T' -> multiplier = 1_000_000_000_000L;
                case 'B' -> multiplier = 1_000_000_000L;
                case 'M' -> multiplier = 1_000_000L;
                case 'K' -> multiplier = 1_000L;
                default -> {
                }
            }
            String digits = multiplier == 1 ? v : v.substring(0, v.length() - 1);
            try {
                return (long) (Double.parseDouble(digits) * multiplier);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--step-batch-size-schedule: entry \"" + entry + "\": \"" + value
                        + "\" is not a number (with an optional K, M, B or T suffix)");
            }
        }

        @Override
        public int globalBatchSizeAt(long consumedSamples, int globalBatchSize) {
            long size = steps.getFirst()[1];
            for (long[] step : steps) {
                if (consumedSamples < step[0]) {
                    break;
                }
                size = step[1];
            }
            return (int) size;
        }

        @Override
        public IntStream batchSizes(int globalBatchSize) {
            return steps.stream().mapToInt(s -> (int) s[1]);
        }

        @Override
        public String flag() {
            return "--step-batch-size-schedule \"" + text + "\"";
        }

        void check(int perStep) {
            for (long[] step : steps) {
                if (step[1] % perStep != 0) {
                    throw new IllegalArgumentException("--step-batch-size-schedule: global batch size " + step[1] + " (from "
                            + step[0] + " samples on) is not divisible by --micro-batch-size x data-parallel size = " + perStep);
                }
            }
        }
    }

    public BatchConfig {
        if (microBatchSize < 1) {
            throw new IllegalArgumentException("--micro-batch-size must be positive, got " + microBatchSize);
        }
        if (dataParallelSize < 1) {
            throw new IllegalArgumentException("data-parallel size must be positive, got " + dataParallelSize);
        }
        int perStep = microBatchSize * dataParallelSize;
        if (globalBatchSize < 1 || globalBatchSize % perStep != 0) {
            throw new IllegalArgumentException("--global-batch-size (" + globalBatchSize + ") must be a positive multiple of"
                    + " --micro-batch-size (" + microBatchSize + ") x data-parallel size (" + dataParallelSize + ") = " + perStep);
        }
        switch (schedule) {
            case Rampup r -> r.check(perStep, globalBatchSize);
            case StepSchedule s -> s.check(perStep);
            case null -> {
            }
        }
    }

    public static BatchConfig of(int micro, int global) {
        return new BatchConfig(micro, global, 1, null);
    }

    /** The global batch size of the iteration that starts after {@code consumedSamples}. */
    public int globalBatchSizeAt(long consumedSamples) {
        return schedule == null ? globalBatchSize : schedule.globalBatchSizeAt(consumedSamples, globalBatchSize);
    }

    /** Every global batch size a run takes. */
    public IntStream batchSizes() {
        return schedule == null ? IntStream.of(globalBatchSize) : schedule.batchSizes(globalBatchSize);
    }

    /** Micro-batches each rank runs in the iteration that starts after {@code consumedSamples}. */
    public int numMicroBatchesAt(long consumedSamples) {
        return globalBatchSizeAt(consumedSamples) / (microBatchSize * dataParallelSize);
    }

    /** Megatron's {@code update_train_iters}: iterations needed for {@code trainSamples}. */
    public long iterationsForSamples(long trainSamples) {
        return switch (schedule) {
            case null -> trainSamples / globalBatchSize;
            case Rampup r -> {
                long iterations = 0;
                long consumed = 0;
                while (consumed <= r.rampupSamples() && consumed <= trainSamples) {
                    consumed += globalBatchSizeAt(consumed);
                    iterations++;
                }
                // floor division as Python's //: overshooting the samples takes an iteration back, as in Megatron
                yield iterations + Math.floorDiv(trainSamples - consumed, globalBatchSize);
            }
            case StepSchedule s -> {
                long iterations = 0;
                for (long consumed = 0; consumed < trainSamples; iterations++) {
                    consumed += globalBatchSizeAt(consumed);
                }
                yield iterations;
            }
        };
    }
}
