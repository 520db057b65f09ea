package org.megatronj.bindings;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Finds NVIDIA's shared libraries by their versioned names ({@code libcuda.so.1},
 * {@code libcublasLt.so.13}, {@code libnccl.so.2}). Search order: {@code --cuda-lib-path} /
 * {@code MEGATRON_CUDA_LIB_PATH}, {@code LD_LIBRARY_PATH}, {@code CUDA_HOME}, the standard
 * system folders, then the {@code nvidia/* /lib} folders of installed Python environments.
 * A miss reports every folder searched, so the user can see what to install or point to.
 */
public final class LibraryLocator {
    /** Set by the CLI's {@code --cuda-lib-path}; takes precedence over the environment. */
    public static final String PATH_PROPERTY = "megatron.cuda.lib.path";
    public static final String PATH_ENV = "MEGATRON_CUDA_LIB_PATH";

    /** The outcome of one search: the file found, or nothing and the folders that were searched. */
    public record Result(String library, Optional<Path> path, List<Path> searched) {
        public String describe() {
            return path.map(p -> library + ": " + p)
                    .orElseGet(() -> library + ": not found (searched " + searched.size() + " folders: "
                            + String.join(", ", searched.stream().map(Path::toString).toList()) + ")");
        }
    }

    private LibraryLocator() {
    }

    /** Searches for the first of {@code names} (e.g. "libcuda.so.1") in the folders of {@link #searchPath()}. */
    public static Result locate(String... names) {
        List<Path> searched = searchPath();
        for (Path dir : searched) {
            for (String name : names) {
                Path candidate = dir.resolve(name);
                if (Files.isRegularFile(candidate) || Files.isSymbolicLink(candidate) && Files.exists(candidate)) {
                    return new Result(names[0], Optional.of(candidate), searched);
                }
            }
        }
        return new Result(names[0], Optional.empty(), searched);
    }

    /** The folders searched, in order, without duplicates; folders that do not exist are left out. */
    public static List<Path> searchPath() {
        Set<Path> dirs = new LinkedHashSet<>();
        addList(dirs, System.getProperty(PATH_PROPERTY));
        addList(dirs, System.getenv(PATH_ENV));
        addList(dirs, System.getenv("LD_LIBRARY_PATH"));
        for (String home : new String[] {System.getenv("CUDA_HOME"), System.getenv("CUDA_PATH")}) {
            if (home != null && !home.isBlank()) {
                dirs.add(Path.of(home, "lib64"));
                dirs.add(Path.of(home, "lib"));
                dirs.add(Path.of(home, "targets", "x86_64-linux", "lib"));
            }
        }
        for (String d : new String[] {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu",
                "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/wsl/lib",
                "/usr/local/nvidia/lib64", "/usr/local/lib"}) {
            dirs.add(Path.of(d));
        }
        dirs.addAll(pythonNvidiaLibDirs());
        List<Path> existing = new ArrayList<>();
        for (Path d : dirs) {
            if (Files.isDirectory(d)) {
                existing.add(d.toAbsolutePath().normalize());
            }
        }
        return existing;
    }

    private static void addList(Set<Path> dirs, String list) {
        if (list == null || list.isBlank()) {
            return;
        }
        for (String part : list.split(":")) {
            if (!part.isBlank()) {
                dirs.add(Path.of(part.trim()));
            }
        }
    }

    /** {@code site-packages/nvidia/<pkg>/lib} of Python environments under the usual roots. */
    private static List<Path> pythonNvidiaLibDirs() {
        List<Path> found = new ArrayList<>();
        List<Path> roots = new ArrayList<>();
        String venv = System.getenv("VIRTUAL_ENV");
        if (venv != null) {
            roots.add(Path.of(venv));
        }
        roots.add(Path.of("/opt/torch/.venv"));
        roots.add(Path.of("/usr/local"));
        roots.add(Path.of("/usr"));
        String home = System.getProperty("user.home");
        if (home != null) {
            roots.add(Path.of(home, ".local"));
        }
        for (Path root : roots) {
            for (String libDir : new String[] {"lib", "lib64"}) {
                Path lib = root.resolve(libDir);
                if (!Files.isDirectory(lib)) {
                    continue;
                }
                try (Stream<Path> pythons = Files.list(lib)) {
                    pythons.filter(p -> p.getFileName().toString().startsWith("python3")).forEach(py -> {
                        for (String pkgs : new String[] {"site-packages", "dist-packages"}) {
                            Path nvidia = py.resolve(pkgs).resolve("nvidia");
                            if (Files.isDirectory(nvidia)) {
                                try (Stream<Path> subs = Files.list(nvidia)) {
                                    subs.map(s -> s.resolve("lib")).filter(Files::isDirectory).sorted().forEach(found::add);
                                } catch (java.io.IOException ignored) {
                                    // an unreadable environment is simply not searched
                                }
                            }
                        }
                    });
                } catch (java.io.IOException ignored) {
                    // likewise
                }
            }
        }
        return found;
    }
}
