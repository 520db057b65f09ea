package org.megatronj.cli;

import org.megatronj.bindings.LibraryLocator;
import picocli.CommandLine.Option;

/** {@code --device} and {@code --cuda-lib-path}, for every command that runs a model. */
public final class DeviceOptions {
    @Option(names = "--device", paramLabel = "DEV", defaultValue = "cpu", description = "cpu or cuda (default ${DEFAULT-VALUE}).")
    String device;

    @Option(names = "--cuda-lib-path", paramLabel = "DIRS",
            description = "Extra folders (colon-separated) to search first for CUDA libraries; also MEGATRON_CUDA_LIB_PATH.")
    String cudaLibPath;

    /** The device to run on, with the CUDA library search pointed at {@code --cuda-lib-path} first. */
    String device() {
        useCudaLibPath(cudaLibPath);
        return device;
    }

    /** Makes the folders of a {@code --cuda-lib-path} value the first searched (nothing when null). */
    static void useCudaLibPath(String dirs) {
        if (dirs != null) {
            System.setProperty(LibraryLocator.PATH_PROPERTY, dirs);
        }
    }
}
