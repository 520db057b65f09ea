package org.megatronj.memory;

/** Where a tensor's bytes live. Host memory is directly addressable by Java code; device memory is not. */
public enum Device {
    CPU,
    CUDA;

    public boolean isHost() {
        return this == CPU;
    }
}
