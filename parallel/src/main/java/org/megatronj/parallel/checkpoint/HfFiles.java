package org.megatronj.parallel.checkpoint;

import java.util.Arrays;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.megatronj.io.safetensors.SafetensorsFile;
import org.megatronj.memory.DType;
import org.megatronj.memory.Tensor;

/** What every Hugging Face architecture's config and weights share: the dtype fields and the checked tensor reads. */
final class HfFiles {
    /** The fields that name the weights' dtype: {@code torch_dtype}, or {@code dtype} since transformers 4.56. */
    static final String[] DTYPE_KEYS = {"torch_dtype", "dtype"};

    private HfFiles() {
    }

    /**
     * Names {@code dtype} in the config's dtype fields (those it has, else {@code torch_dtype}): transformers loads the
     * weights in it ({@code torch_dtype="auto"}), so it must be what the file holds.
     */
    static void putDtype(ObjectNode c, DType dtype) {
        String torchName = switch (dtype) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> throw new IllegalArgumentException("Hugging Face weights are float32, bfloat16 or float16, not " + dtype);
        };
        boolean named = false;
        for (String key : DTYPE_KEYS) {
            if (c.hasNonNull(key)) {
                c.put(key, torchName);
                named = true;
            }
        }
        if (!named) {
            c.put("torch_dtype", torchName);
        }
    }

    /** Tensor {@code key} of {@code file} as floats, checked to exist with {@code shape} and a floating dtype. */
    static float[] read(HfSafetensors file, String key, long... shape) {
        if (!file.contains(key)) {
            throw new HfConfigException(file.path() + ": tensor '" + key + "' is missing");
        }
        SafetensorsFile.TensorInfo info = file.info(key);
        if (!Arrays.equals(info.shape(), shape)) {
            throw new HfConfigException(file.pathOf(key) + ": tensor '" + key + "' has shape " + Tensor.shapeString(info.shape())
                    + " but config.json implies " + Tensor.shapeString(shape));
        }
        if (!info.dtype().isFloatingPoint()) {
            throw new HfConfigException(file.pathOf(key) + ": tensor '" + key + "' is " + info.dtype() + ", expected a float type");
        }
        return file.tensor(key).toFloatArray();
    }
}
