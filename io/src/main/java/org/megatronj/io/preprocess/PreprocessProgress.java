package org.megatronj.io.preprocess;

/**
 * A snapshot of a preprocessing run, handed to the listener after every batch and at the end.
 *
 * @param documents  documents (input lines with an object) written so far
 * @param tokens     tokens written so far, over all keys, EOD included
 * @param bytesRead  input bytes consumed
 * @param inputBytes size of the input file (for the ETA)
 * @param elapsedNanos time since the run started
 */
public record PreprocessProgress(long documents, long tokens, long bytesRead, long inputBytes, long elapsedNanos) {
    public double seconds() {
        return elapsedNanos / 1e9;
    }

    public double documentsPerSecond() {
        return documents / Math.max(1e-9, seconds());
    }

    public double tokensPerSecond() {
        return tokens / Math.max(1e-9, seconds());
    }

    public double megabytesPerSecond() {
        return bytesRead / 1e6 / Math.max(1e-9, seconds());
    }

    /** Seconds left at the current byte rate, or NaN before anything was read. */
    public double etaSeconds() {
        return bytesRead == 0 ? Double.NaN : seconds() * (inputBytes - bytesRead) / bytesRead;
    }
}
