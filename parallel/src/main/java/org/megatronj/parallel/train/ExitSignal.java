package org.megatronj.parallel.train;

import sun.misc.Signal;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Megatron's {@code --exit-signal-handler}: SIGTERM (what Slurm and Kubernetes send before a kill)
 * no longer ends the JVM at once but sets a flag that the trainer checks after each iteration; it
 * then saves a checkpoint and returns normally. {@link #close()} restores the previous handler.
 */
public final class ExitSignal implements AutoCloseable {
    private final AtomicBoolean received = new AtomicBoolean();
    private final Signal signal;
    private final sun.misc.SignalHandler previous;

    private ExitSignal(String name) {
        this.signal = new Signal(name);
        this.previous = Signal.handle(signal, s -> received.set(true));
    }

    /** Installs the SIGTERM handler. */
    public static ExitSignal onSigterm() {
        return new ExitSignal("TERM");
    }

    /** A flag set by code instead of a signal (tests and embedding applications). */
    public static ExitSignal manual() {
        return new ExitSignal();
    }

    private ExitSignal() {
        this.signal = null;
        this.previous = null;
    }

    public boolean received() {
        return received.get();
    }

    /** Asks the trainer to stop after the current iteration, as SIGTERM does. */
    public void request() {
        received.set(true);
    }

    @Override
    public void close() {
        if (signal != null) {
            Signal.handle(signal, previous);
        }
    }
}
