package org.megatronj.cli;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

import org.megatronj.bindings.LibraryLocator;
import org.megatronj.memory.cpu.VectorWidth;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code megatron info}: what this machine offers Megatron-J — JDK, CPU vectors and threads, CUDA libraries, GPUs, kernels. */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Show the JDK, the CPU backend's vector width and threads, the CUDA libraries found, "
                + "the GPUs the driver sees and the CUDA kernels built into this jar.")
final class InfoCommand implements Callable<Integer> {

    @Option(names = "--cuda-lib-path", paramLabel = "DIRS",
            description = "Extra folders (colon-separated) to search first for CUDA libraries; also MEGATRON_CUDA_LIB_PATH.")
    String cudaLibPath;

    @Override
    public Integer call() {
        DeviceOptions.useCudaLibPath(cudaLibPath);
        var out = System.out;
        out.println("Megatron-J " + new VersionProvider().getVersion()[0].replace("Megatron-J ", ""));
        out.println();
        out.println("JDK");
        out.printf("  version:        %s (%s)%n", Runtime.version(), System.getProperty("java.vendor"));
        out.printf("  home:           %s%n", System.getProperty("java.home"));
        out.printf("  max heap:       %d MiB%n", Runtime.getRuntime().maxMemory() >> 20);
        out.println();
        out.println("CPU backend");
        out.printf("  cpu:            %s%n", cpuModel());
        out.printf("  vector species: %s%n", VectorWidth.describe());
        out.printf("  threads:        %d (of %d available processors; -Dmegatron.cpu.threads to change)%n",
                cpuThreads(), Runtime.getRuntime().availableProcessors());
        out.printf("  os:             %s %s %s%n", System.getProperty("os.name"), System.getProperty("os.version"),
                System.getProperty("os.arch"));
        out.println();
        out.println("CUDA libraries");
        List<Path> searched = LibraryLocator.searchPath();
        for (String[] names : new String[][] {{"libcuda.so.1", "libcuda.so"}, {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"},
                {"libnccl.so.2", "libnccl.so"}}) {
            LibraryLocator.Result r = LibraryLocator.locate(names);
            out.printf("  %-18s %s%n", names[0] + ":", r.path().map(Path::toString).orElse("not found"));
        }
        out.println("  searched:         " + (searched.isEmpty() ? "(no folders exist)" : searched.getFirst()));
        for (int i = 1; i < searched.size(); i++) {
            out.println("                    " + searched.get(i));
        }
        out.println();
        GpuReport.print(out);
        return 0;
    }

    private static int cpuThreads() {
        String p = System.getProperty("megatron.cpu.threads");
        return p == null ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(p.trim());
    }

    private static String cpuModel() {
        try {
            for (String line : java.nio.file.Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (java.io.IOException | RuntimeException ignored) {
            // not Linux: fall back to the JVM's view
        }
        return System.getProperty("os.arch") + ", " + ManagementFactory.getOperatingSystemMXBean().getAvailableProcessors() + " processors";
    }
}
