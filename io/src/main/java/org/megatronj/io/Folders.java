package org.megatronj.io;

import java.nio.file.Files;
import java.nio.file.Path;

/** Why a folder cannot be created, said before trying: Java's own errors name the path but not the reason. */
public final class Folders {
    private Folders() {
    }

    /** The path itself or the nearest folder above it that exists as a file, so that no folder can be made there; or null. */
    public static Path fileInTheWay(Path folder) {
        for (Path p = folder.toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.isDirectory(p)) {
                return null;
            }
            if (Files.exists(p)) {
                return p;
            }
        }
        return null;
    }
}
