package org.megatronj.bindings;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Path;

/**
 * One NVIDIA library, found by {@link LibraryLocator} and loaded on first use for the lifetime of
 * the process (the generated {@code *_h} classes hold one each). A library that is missing
 * fails every use with the same {@link UnsatisfiedLinkError}, naming the folders searched, and
 * never leaves a class half-initialised.
 */
public final class NativeLibrary {
    private final String label;
    private final String[] fileNames;
    private volatile SymbolLookup lookup;
    private volatile String failure;

    /** {@code fileNames}: versioned names, the preferred first ({@code libcuda.so.1}, {@code libcuda.so}). */
    public NativeLibrary(String label, String... fileNames) {
        this.label = label;
        this.fileNames = fileNames.clone();
    }

    /** The loaded library's symbols; throws {@link UnsatisfiedLinkError} with the search report when it cannot be loaded. */
    public SymbolLookup lookup() {
        SymbolLookup l = lookup;
        if (l != null) {
            return l;
        }
        synchronized (this) {
            if (lookup == null && failure == null) {
                load();
            }
            if (lookup == null) {
                throw new UnsatisfiedLinkError(failure);
            }
            return lookup;
        }
    }

    /** True when the library loads (never throws). */
    public boolean isAvailable() {
        try {
            lookup();
            return true;
        } catch (UnsatisfiedLinkError e) {
            return false;
        }
    }

    /** The address of {@code symbol}; throws {@link UnsatisfiedLinkError} naming the symbol and library when absent. */
    public MemorySegment find(String symbol) {
        return lookup().find(symbol).orElseThrow(() -> new UnsatisfiedLinkError(
                label + " has no symbol '" + symbol + "': the installed library is older than the header these bindings were "
                        + "generated from (see bindings/jextract/README.md)"));
    }

    @SuppressWarnings("restricted") // loading a native library is what this class is for
    private void load() {
        LibraryLocator.Result found = LibraryLocator.locate(fileNames);
        if (found.path().isPresent()) {
            Path p = found.path().get();
            try {
                lookup = SymbolLookup.libraryLookup(p, Arena.global());
                return;
            } catch (IllegalArgumentException e) {
                failure = label + ": found " + p + " but it could not be loaded: " + e.getMessage();
                return;
            }
        }
        // Not in any folder we know: let the dynamic linker try its own cache (ldconfig) before giving up.
        for (String name : fileNames) {
            try {
                lookup = SymbolLookup.libraryLookup(name, Arena.global());
                return;
            } catch (IllegalArgumentException ignored) {
                // try the next name
            }
        }
        failure = found.describe() + "; nor did the dynamic linker find " + String.join(" or ", fileNames)
                + ". Install the NVIDIA driver/CUDA libraries, or point --cuda-lib-path / " + LibraryLocator.PATH_ENV
                + " at the folder holding them.";
    }
}
