package org.megatronj.io.tokenizer;

import java.util.Arrays;

/** A growable int array (token ids) without boxing. */
public final class IntList {
    private int[] data;
    private int size;

    public IntList(int capacity) {
        data = new int[Math.max(4, capacity)];
    }

    public void add(int v) {
        if (size == data.length) data = Arrays.copyOf(data, data.length * 2);
        data[size++] = v;
    }

    public void addAll(int[] values) {
        if (size + values.length > data.length) data = Arrays.copyOf(data, Math.max(data.length * 2, size + values.length));
        System.arraycopy(values, 0, data, size, values.length);
        size += values.length;
    }

    public int size() {
        return size;
    }

    public int get(int i) {
        return data[i];
    }

    public int removeLast() {
        return data[--size];
    }

    public void clear() {
        size = 0;
    }

    /** The backing array; elements {@code [0, size())} are valid until the next add. */
    public int[] array() {
        return data;
    }

    public int[] toArray() {
        return Arrays.copyOf(data, size);
    }
}
