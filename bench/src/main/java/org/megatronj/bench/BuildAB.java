package org.megatronj.bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Two builds of Megatron-J in one JVM, training steps alternating (A B, B A, ...): the ratio of each round's
 * two steps, taken seconds apart, is what a shared machine lets one measure of a few-percent change. On the
 * 2-core hosts of this project the speed of one build swings by 20-40% between runs, and by ±20% between
 * steps five seconds apart; whole runs taken in turn (bench/gpt-cpu.sh) only resolve far larger effects.
 *
 * <p>Each build gets its own class loader over its {@code megatron-bench.jar} and {@code lib/} (a
 * {@code bench/target} folder); {@link BuildStep} is defined in each from this build's class file. Both
 * models live at once, so memory is twice one run's.
 *
 * <p>Usage: {@code BuildAB CONFIG ROUNDS DIR_A DIR_B [THREADS]}; prints every round and the median ratio B/A
 * with its quartiles. {@code bench/ab-builds.sh} builds a git revision and runs this against the work tree.
 */
public final class BuildAB {
    private BuildAB() {
    }

    /** A build's step function, reached through its own class loader. */
    private record Build(Object step, Method stepMethod, Method lossMethod) {
        double run() {
            return (double) invoke(stepMethod);
        }

        double loss() {
            return (double) invoke(lossMethod);
        }

        private Object invoke(Method m) {
            try {
                return m.invoke(step);
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            } catch (InvocationTargetException e) {
                throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
            }
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: BuildAB CONFIG ROUNDS DIR_A DIR_B [THREADS]   (DIR: a bench/target folder)");
            System.exit(2);
        }
        String config = args[0];
        int rounds = Integer.parseInt(args[1]);
        int threads = args.length > 4 ? Integer.parseInt(args[4]) : 2;
        Build a;
        Build b;
        try {
            a = load(Path.of(args[2]), config, threads);
            b = load(Path.of(args[3]), config, threads);
        } catch (IllegalArgumentException | IOException e) {
            System.err.println("BuildAB: " + e.getMessage());
            System.exit(2);
            return;
        } catch (InvocationTargetException e) { // the step's constructor: an unknown config, a model that fails to build
            System.err.println("BuildAB: " + e.getCause().getMessage());
            System.exit(2);
            return;
        }
        for (int i = 0; i < 2; i++) { // JIT warm-up of both
            a.run();
            b.run();
        }
        double[] ratios = new double[rounds];
        double[] ta = new double[rounds];
        double[] tb = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            if (r % 2 == 0) {
                ta[r] = a.run();
                tb[r] = b.run();
            } else {
                tb[r] = b.run();
                ta[r] = a.run();
            }
            ratios[r] = tb[r] / ta[r];
            System.out.printf(Locale.ROOT, "round %3d: A %.3f s, B %.3f s, B/A %.3f%n", r + 1, ta[r], tb[r], ratios[r]);
        }
        Arrays.sort(ratios);
        Arrays.sort(ta);
        Arrays.sort(tb);
        System.out.printf(Locale.ROOT, "config %s, %d rounds: median step A %.3f s, B %.3f s; B/A median %.3f,"
                        + " quartiles %.3f-%.3f; final losses A %.6f, B %.6f%n", config, rounds, ta[rounds / 2],
                tb[rounds / 2], ratios[rounds / 2], ratios[rounds / 4], ratios[(3 * rounds) / 4], a.loss(), b.loss());
        System.exit(0); // the builds' worker threads are daemons, but their pools are never closed
    }

    private static Build load(Path dir, String config, int threads) throws Exception {
        List<URL> urls = new ArrayList<>();
        Path jar = dir.resolve("megatron-bench.jar");
        if (!Files.isRegularFile(jar)) {
            throw new IllegalArgumentException(dir + ": no megatron-bench.jar (expected a bench/target folder)");
        }
        urls.add(jar.toUri().toURL());
        try (DirectoryStream<Path> libs = Files.newDirectoryStream(dir.resolve("lib"), "*.jar")) {
            for (Path p : libs) {
                urls.add(p.toUri().toURL());
            }
        }
        ClassLoader loader = new StepLoader(urls.toArray(URL[]::new));
        Class<?> c = Class.forName(BuildStep.class.getName(), true, loader);
        Object step = c.getConstructor(String.class, int.class).newInstance(config, threads);
        return new Build(step, c.getMethod("step"), c.getMethod("loss"));
    }

    /** A build's classes, plus this build's {@link BuildStep} (older builds lack it). */
    private static final class StepLoader extends URLClassLoader {
        StepLoader(URL[] urls) {
            super(urls, ClassLoader.getPlatformClassLoader());
        }

        @Override
        protected Class<?> findClass(String name) throws ClassNotFoundException {
            if (!name.equals(BuildStep.class.getName())) {
                return super.findClass(name);
            }
            try (InputStream in = BuildAB.class.getResourceAsStream("BuildStep.class")) {
                byte[] bytes = in.readAllBytes();
                return defineClass(name, bytes, 0, bytes.length);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }
}
