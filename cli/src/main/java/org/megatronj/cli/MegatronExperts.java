package org.megatronj.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.megatronj.io.torch.TorchFile;

/**
 * The expert tensors of a Megatron-core MoE layer ({@code decoder.layers.<i>.mlp.experts.*}) in the layouts Megatron-LM
 * saves them, as Megatron-J's SequentialMLP names with global expert indices
 * ({@code decoder.layers.<i>.mlp.experts.local_experts.<g>.linear_fc1.weight}). An expert-parallel rank {@code r} of
 * {@code EP} holds the experts {@code r E/EP ... (r+1) E/EP - 1}, numbered from 0 in its state dict
 * (megatron/core/transformer/moe/experts.py, the {@code sharded_state_dict} of each experts module:
 * {@code local_expert_indices_offset = ep_rank * num_local_experts}).
 *
 * <p>{@code --ckpt-format torch} state dicts, one expert-parallel rank's local experts each:
 * <ul>
 *   <li>SequentialMLP (the local spec, and TransformerEngine's without {@code --moe-grouped-gemm}):
 *       {@code local_experts.<i>.linear_fc1.weight}, linear weights [out, in];</li>
 *   <li>TEGroupedMLP ({@code --moe-grouped-gemm} under TE's spec): TE GroupedLinear's {@code linear_fc1.weight<i>} and
 *       {@code linear_fc2.weight<i>}, one linear weight per local expert; with {@code moe_single_grouped_weight} one
 *       {@code linear_fc1.weight} [E_local, out, in] (TE's load hook stacks the per-GEMM weights along dim 0);</li>
 *   <li>the legacy GroupedMLP ({@code --moe-use-legacy-grouped-gemm}, or {@code --moe-grouped-gemm} under the local
 *       spec, removed from Megatron-LM in 2026): {@code weight1} [h, E_local F1] and {@code weight2} [E_local F, h], which
 *       its forward reads as {@code weight1.view(E_local, h, -1)} and {@code weight2.view(E_local, -1, h)}: the memory of
 *       each is the local experts' transposed weights ([h, F1] for fc1, [F, h] for fc2) one after another, so expert
 *       {@code i}'s fc1 is the i-th block of h F1 values read as [h, F1] and transposed (not columns
 *       {@code i F1 ... (i+1) F1 - 1} of the [h, E F1] matrix).</li>
 * </ul>
 * Under tensor parallelism (expert tensor parallelism equal to it) each rank's expert weights are its shards, as a dense
 * MLP's: fc1 SwiGLU's gate rows then up rows of the rank, fc2 the rank's columns.
 */
final class MegatronExperts {
    private static final Pattern EXPERTS = Pattern.compile("(decoder\\.layers\\.\\d+\\.mlp\\.experts\\.)(.+)");
    private static final Pattern SEQUENTIAL = Pattern.compile("local_experts\\.(\\d+)\\.(.+)");
    private static final Pattern TE_GROUPED = Pattern.compile("(linear_fc[12])\\.(weight|bias)(\\d+)");
    private static final Pattern SINGLE_GROUPED = Pattern.compile("(linear_fc[12])\\.(weight|bias)");
    /** A torch_dist key with an expert axis: {@code decoder.layers[.<i>].mlp.experts.experts.<linear>.<param>}. */
    private static final Pattern DIST_AXIS = Pattern.compile("decoder\\.layers\\.(\\d+\\.)?mlp\\.experts\\.experts\\.([a-z_].*)");
    /** torch_dist's per-expert keys ({@code singleton_local_shards}): {@code ...mlp.experts.experts.<g>.<rest>}. */
    private static final Pattern DIST_SINGLETON = Pattern.compile("(decoder\\.layers\\.\\d+\\.mlp\\.experts\\.)experts\\.(\\d+\\..+)");

    private MegatronExperts() {
    }

    /** A tensor under Megatron-J's name: its shape and a way to read its values (F32). */
    record Source(String name, long[] shape, Supplier<float[]> values) {
    }

    /**
     * The expert tensors that state-dict entry {@code name} (layer already global, {@code t} in {@code torch}) holds
     * under their global names, {@code offset} being the first global expert of the file's {@code local} experts; null
     * when {@code name} is not an expert tensor.
     */
    static List<Source> torchExperts(String name, TorchFile.TensorRef t, TorchFile torch, int offset, int local, Path file) {
        Matcher m = EXPERTS.matcher(name);
        if (!m.matches()) {
            return null;
        }
        String prefix = m.group(1) + "local_experts.", rest = m.group(2);
        Matcher sequential = SEQUENTIAL.matcher(rest), grouped = TE_GROUPED.matcher(rest), single = SINGLE_GROUPED.matcher(rest);
        if (sequential.matches()) {
            return List.of(new Source(prefix + global(sequential.group(1), offset, local, name, file) + "." + sequential.group(2),
                    t.shape(), () -> torch.floats(t)));
        }
        if (grouped.matches()) {
            return List.of(new Source(prefix + global(grouped.group(3), offset, local, name, file) + "." + grouped.group(1) + "."
                    + grouped.group(2), t.shape(), () -> torch.floats(t)));
        }
        long[] shape = t.shape();
        Supplier<float[]> whole = memoized(() -> torch.floats(t));
        List<Source> out = new ArrayList<>();
        if (single.matches() && shape.length == (single.group(2).equals("weight") ? 3 : 2) && shape[0] == local) {
            long[] one = Arrays.copyOfRange(shape, 1, shape.length);
            int n = Math.toIntExact(t.numel() / local);
            for (int i = 0; i < local; i++) {
                int from = i * n;
                out.add(new Source(prefix + (offset + i) + "." + rest, one, () -> Arrays.copyOfRange(whole.get(), from, from + n)));
            }
            return out;
        }
        if ((rest.equals("weight1") || rest.equals("weight2")) && shape.length == 2) {
            boolean fc1 = rest.equals("weight1");
            long rows = fc1 ? shape[0] : shape[0] / local, cols = fc1 ? shape[1] / local : shape[1];
            if ((fc1 ? shape[1] : shape[0]) % local != 0) {
                throw new IllegalArgumentException(file + ": " + name + " " + Arrays.toString(shape) + " does not hold " + local
                        + " experts");
            }
            for (int i = 0; i < local; i++) {
                int from = Math.toIntExact(i * rows * cols);
                out.add(new Source(prefix + (offset + i) + "." + (fc1 ? "linear_fc1" : "linear_fc2") + ".weight",
                        new long[] {cols, rows}, () -> transposed(whole.get(), from, (int) rows, (int) cols)));
            }
            return out;
        }
        throw new IllegalArgumentException(file + ": " + name + " " + Arrays.toString(shape) + " is in no expert layout"
                + " import-torch reads (SequentialMLP's local_experts.<i>.*, TEGroupedMLP's linear_fc1.weight<i>, the legacy"
                + " GroupedMLP's weight1/weight2)");
    }

    /**
     * For a torch_dist key with an expert axis ({@code SequentialMLP}/{@code TEGroupedMLP} {@code sharded_state_dict}:
     * the experts' tensors at their global index along a new axis after the layer axis, if stacked), the position of
     * that axis; -1 for other keys.
     */
    static int distExpertAxis(String key) {
        Matcher m = DIST_AXIS.matcher(key);
        return !m.matches() ? -1 : m.group(1) == null ? 1 : 0;
    }

    /** The Megatron-J name of expert {@code g} of layer {@code layer} for a key {@link #distExpertAxis} matched. */
    static String distExpertName(String key, int layer, int g) {
        Matcher m = DIST_AXIS.matcher(key);
        if (!m.matches()) {
            throw new IllegalStateException(key);
        }
        return "decoder.layers." + layer + ".mlp.experts.local_experts." + g + "." + m.group(2);
    }

    /** torch_dist's per-expert key {@code ...mlp.experts.experts.<g>.<rest>} under SequentialMLP's name; others as they are. */
    static String distSingletonName(String key) {
        Matcher m = DIST_SINGLETON.matcher(key);
        return m.matches() ? m.group(1) + "local_experts." + m.group(2) : key;
    }

    private static int global(String localIndex, int offset, int local, String name, Path file) {
        int i = Integer.parseInt(localIndex);
        if (i >= local) {
            throw new IllegalArgumentException(file + ": " + name + " is local expert " + i + " but an expert-parallel rank of"
                    + " the run holds " + local + " experts");
        }
        return offset + i;
    }

    /** The [rows, cols] block at {@code from} of {@code values}, transposed to [cols, rows]. */
    static float[] transposed(float[] values, int from, int rows, int cols) {
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[c * rows + r] = values[from + r * cols + c];
            }
        }
        return out;
    }

    private static Supplier<float[]> memoized(Supplier<float[]> read) {
        return new Supplier<>() {
            private float[] values;

            @Override
            public synchronized float[] get() {
                if (values == null) {
                    values = read.get();
                }
                return values;
            }
        };
    }
}
