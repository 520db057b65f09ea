package org.megatronj.bench;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedFrame;
import jdk.jfr.consumer.RecordedStackTrace;
import jdk.jfr.consumer.RecordingFile;

/**
 * Where the CPU time of a run goes, from a JFR recording: every {@code jdk.ExecutionSample} is
 * charged to the CPU backend's kernel family its stack is in (gemm, attention, layernorm, ...),
 * found by walking the stack from the top past shared helpers ({@code VectorMath}, {@code FloatRows}).
 * Kernels run on the backend's pool threads, whose stacks end in the thread pool, so the family of
 * the innermost kernel class is what identifies the op. Also prints the hottest methods of each
 * family, the share of samples whose top frame is Vector API library code (boxed vectors, see
 * {@link #inVectorApiLibrary}), and the top heap allocation sites ({@code jdk.ObjectAllocationSample},
 * by sampled weight).
 *
 * <p>Usage: {@code JfrProfileSummary recording.jfr [top-methods-per-family]}; prints markdown.
 */
public final class JfrProfileSummary {
    private static final String CPU_PACKAGE = "org.megatronj.memory.cpu.";

    /** Kernel class (simple name prefix) to family; helpers map to null and the walk goes on. */
    private static final Map<String, String> FAMILIES = new LinkedHashMap<>();

    static {
        FAMILIES.put("Gemm", "gemm");
        FAMILIES.put("CpuGemm", "gemm");
        FAMILIES.put("Attention", "attention");
        FAMILIES.put("ReferenceAttention", "attention");
        FAMILIES.put("CrossEntropyKernels", "cross-entropy (LM loss)");
        FAMILIES.put("NormKernels", "layernorm");
        FAMILIES.put("ActivationKernels", "gelu");
        FAMILIES.put("ElementwiseKernels", "elementwise (bias, residual, copies)");
        FAMILIES.put("EmbeddingKernels", "embedding / row gathers");
        FAMILIES.put("OptimizerKernels", "optimizer (AdamW)");
        FAMILIES.put("CpuThreads", "threads polling for work or waiting for a chunk (CpuThreads)");
    }

    private JfrProfileSummary() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 1 || args.length > 2) {
            throw new IllegalArgumentException("usage: JfrProfileSummary recording.jfr [top-methods-per-family]");
        }
        int top = args.length == 2 ? Integer.parseInt(args[1]) : 4;
        Map<String, Long> byFamily = new TreeMap<>();
        Map<String, Map<String, Long>> methods = new TreeMap<>();
        Map<String, Double> allocations = new TreeMap<>();
        Map<String, Long> boxed = new TreeMap<>();
        long samples = 0;
        for (RecordedEvent e : RecordingFile.readAllEvents(Path.of(args[0]))) {
            String type = e.getEventType().getName();
            if (type.equals("jdk.ExecutionSample")) {
                RecordedStackTrace st = e.getStackTrace();
                if (st == null || st.getFrames().isEmpty()) {
                    continue;
                }
                samples++;
                List<RecordedFrame> frames = st.getFrames();
                String family = family(frames);
                byFamily.merge(family, 1L, Long::sum);
                if (inVectorApiLibrary(frames.get(0))) {
                    boxed.merge(family, 1L, Long::sum);
                }
                methods.computeIfAbsent(family, k -> new TreeMap<>()).merge(site(frames), 1L, Long::sum);
            } else if (type.equals("jdk.ObjectAllocationSample") && e.getStackTrace() != null) {
                String site = allocationSite(e.getStackTrace().getFrames());
                String cls = e.getClass("objectClass") == null ? "?" : e.getClass("objectClass").getName();
                allocations.merge(cls + " at " + site, (double) e.getLong("weight"), Double::sum);
            }
        }
        if (samples == 0) {
            throw new IllegalStateException(args[0] + " holds no jdk.ExecutionSample events: record with "
                    + "-XX:StartFlightRecording=settings=profile,filename=...");
        }
        StringBuilder out = new StringBuilder();
        out.append("| kernel family | samples | share of CPU time | in Vector API library code | hottest Megatron-J methods "
                + "(share of the family) |\n");
        out.append("|---|---:|---:|---:|---|\n");
        final long total = samples;
        byFamily.entrySet().stream().sorted(Map.Entry.<String, Long>comparingByValue().reversed()).forEach(f -> {
            long n = f.getValue();
            String hot = methods.get(f.getKey()).entrySet().stream()
                    .sorted(Map.Entry.<String, Long>comparingByValue().reversed()).limit(top)
                    .map(m -> String.format(Locale.ROOT, "%s %.0f%%", m.getKey(), 100.0 * m.getValue() / n))
                    .reduce((a, b) -> a + "; " + b).orElse("");
            out.append(String.format(Locale.ROOT, "| %s | %d | %.1f%% | %.0f%% | %s |%n", f.getKey(), n, 100.0 * n / total,
                    100.0 * boxed.getOrDefault(f.getKey(), 0L) / n, hot));
        });
        double allocated = allocations.values().stream().mapToDouble(Double::doubleValue).sum();
        if (allocated > 0) {
            out.append(String.format(Locale.ROOT, "%nHeap allocation (sampled weight, whole recording): %.0f MB; top sites:%n%n",
                    allocated / 1048576));
            allocations.entrySet().stream().sorted(Map.Entry.<String, Double>comparingByValue(Comparator.reverseOrder()))
                    .limit(6).forEach(a -> out.append(String.format(Locale.ROOT, "- %.0f MB (%.0f%%) %s%n",
                            a.getValue() / 1048576, 100 * a.getValue() / allocated, a.getKey())));
        }
        System.out.print(out);
    }

    /** The family of the innermost CPU-backend kernel class on the stack, else where the time went. */
    static String family(List<RecordedFrame> frames) {
        for (RecordedFrame f : frames) {
            String cls = f.getMethod().getType().getName();
            if (!cls.startsWith(CPU_PACKAGE)) {
                continue;
            }
            String simple = cls.substring(CPU_PACKAGE.length());
            int nested = simple.indexOf('$');
            if (nested >= 0) {
                simple = simple.substring(0, nested);
            }
            for (Map.Entry<String, String> e : FAMILIES.entrySet()) {
                if (simple.startsWith(e.getKey())) {
                    return e.getValue();
                }
            }
        }
        for (RecordedFrame f : frames) {
            if (f.getMethod().getType().getName().startsWith("org.megatronj.")) {
                return "model code on the host (no kernel)";
            }
        }
        return "JVM / JDK (no Megatron-J frame)";
    }

    /**
     * True when a sample's top frame is Vector API library code (jdk.incubator.vector,
     * jdk.internal.vm.vector, or one of its hidden lambda classes) rather than compiled kernel code:
     * where C2 intrinsifies a kernel those frames vanish into SIMD instructions, so time spent in them
     * means vectors boxed as objects (not yet compiled, or an intrinsic that failed).
     */
    static boolean inVectorApiLibrary(RecordedFrame top) {
        String cls = top.getMethod().getType().getName();
        return cls.startsWith("jdk.incubator.vector.") || cls.startsWith("jdk.internal.vm.vector.") || cls.startsWith("0x");
    }

    /** The innermost Megatron-J frame of a sample (the kernel method), else its top frame. */
    private static String site(List<RecordedFrame> frames) {
        return allocationSite(frames);
    }

    /** The first Megatron-J frame of an allocation's stack (the code that asked for the memory). */
    private static String allocationSite(List<RecordedFrame> frames) {
        return frames.stream().filter(f -> f.getMethod().getType().getName().startsWith("org.megatronj."))
                .findFirst().map(JfrProfileSummary::name).orElse(frames.isEmpty() ? "?" : name(frames.get(0)));
    }

    private static String name(RecordedFrame f) {
        String cls = f.getMethod().getType().getName();
        return cls.substring(cls.lastIndexOf('.') + 1) + "." + f.getMethod().getName() + ":" + f.getLineNumber();
    }
}
