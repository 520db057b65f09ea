package org.megatronj.io.npy;

import java.io.IOException;
import java.nio.file.Path;

/** A {@code .npy} file that is not what NumPy writes: says which file, where and what was expected. */
public final class NpyFormatException extends IOException {
    public NpyFormatException(Path file, String message) {
        super(file + ": " + message);
    }
}
