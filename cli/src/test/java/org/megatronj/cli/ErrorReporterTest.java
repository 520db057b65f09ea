package org.megatronj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ErrorReporterTest {
    @TempDir
    Path dir;

    /** Java's file exceptions carry only the path; the reason has to be spelled out. */
    @Test
    void describesTheReasonJavaLeavesImplicit() {
        assertEquals("ids.npy: no such file or directory", ErrorReporter.describe(new NoSuchFileException("ids.npy")));
        assertEquals("/proc/x: permission denied", ErrorReporter.describe(new AccessDeniedException("/proc/x")));
        assertEquals("a: Read-only file system", ErrorReporter.describe(new FileSystemException("a", null, "Read-only file system")));
        assertEquals("ids.npy: no such file or directory",
                ErrorReporter.describe(new UncheckedIOException(new NoSuchFileException("ids.npy"))));
        assertEquals("connection refused", ErrorReporter.describe(new ConnectException()));
        assertEquals("bad value", ErrorReporter.describe(new IllegalArgumentException("bad value")));
    }

    /** Jackson's messages end in "[Source: REDACTED ...]"; ours give its own text and the position. */
    @Test
    void jsonErrorsAreOneLineWithThePosition() {
        var e = org.junit.jupiter.api.Assertions.assertThrows(com.fasterxml.jackson.core.JsonProcessingException.class,
                () -> new com.fasterxml.jackson.databind.ObjectMapper().readTree("{\"a\": x}"));
        String d = ErrorReporter.describe(e);
        assertTrue(d.startsWith("Unrecognized token 'x'") && d.endsWith(" at line 1, column 8") && !d.contains("REDACTED"), d);
    }

    @Test
    void aMissingFileIsNamedWithItsReasonOnTheCommandLine() {
        Path missing = dir.resolve("loss.csv");
        CliRun r = CliRun.of("plot-loss", missing.toString(), "-o", dir.resolve("loss.png").toString());
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().contains("megatron plot-loss: error: ") && r.err().contains(missing + ": no such file or directory"),
                r.err());
    }

    /**
     * An invalid command line is its problems, the typo's suggestions and where the flags are: not the
     * 240-line usage, and a mistyped required flag is named though picocli reports the missing one first.
     */
    @Test
    void anInvalidCommandLineNamesEveryProblemAndPointsAtHelp() {
        CliRun r = CliRun.of("pretrain", "gpt", "--num-layer", "2");
        assertEquals(2, r.code(), r.toString());
        String[] lines = r.err().split("\n");
        assertTrue(lines[0].startsWith("Missing required options: "), r.err());
        assertEquals("Unknown options: '--num-layer', '2'", lines[1], r.err());
        assertTrue(lines[2].startsWith("Possible solutions: ") && lines[2].contains(" --num-layers,"), r.err());
        assertEquals("Run 'megatron pretrain gpt --help' for its flags.", lines[3], r.err());
        assertEquals(4, lines.length, r.err());
        assertTrue(r.out().isEmpty(), r.out());

        CliRun bad = CliRun.of("preprocess", "--input", "in.jsonl", "--output-prefix", "out", "--workers", "two");
        assertEquals(2, bad.code(), bad.toString());
        assertEquals("Invalid value for option '--workers': 'two' is not an int\nRun 'megatron preprocess --help' for its flags.\n",
                bad.err(), bad.toString());
    }
}
