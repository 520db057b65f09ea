package org.megatronj.parallel.data;

/** A parameter as the gradient buffer sees it: its checkpoint name and element count. */
public record ParamSpec(String name, long numel) {
    public ParamSpec {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("parameter name must not be empty");
        }
        if (numel < 1) {
            throw new IllegalArgumentException("parameter '" + name + "' has " + numel + " elements; expected at least 1");
        }
    }
}
