package org.megatronj.parallel.train;

import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

import org.megatronj.memory.TensorArena;

/**
 * A checkpoint's files written by a thread of their own from a copy ({@code snapshot}), published by the
 * trainer's thread when it asks: the writer touches only files, so collectives and logs stay on the
 * training thread, in order.
 */
public final class BackgroundSave implements TrainingCheckpoints.PendingSave {
    private final CompletableFuture<Long> write = new CompletableFuture<>();
    private final TensorArena snapshot;
    private final Runnable publish;

    /**
     * @param snapshot the copy the writer reads, closed by {@link #finish}
     * @param writer   writes this rank's files (not yet visible) and returns their bytes
     * @param publish  makes the checkpoint visible once every rank's files are written
     */
    public BackgroundSave(TensorArena snapshot, Callable<Long> writer, Runnable publish) {
        this.snapshot = snapshot;
        this.publish = publish;
        Thread.ofPlatform().name("checkpoint-writer").daemon().start(() -> {
            try {
                write.complete(writer.call());
            } catch (Throwable t) {
                write.completeExceptionally(t);
            }
        });
    }

    @Override
    public boolean written() {
        return write.isDone();
    }

    @Override
    public long finish() {
        long bytes;
        try {
            bytes = write.join();
        } catch (CompletionException e) {
            snapshot.close();
            throw e.getCause() instanceof RuntimeException r ? r
                    : new IllegalStateException("the checkpoint writer failed: " + e.getCause(), e.getCause());
        }
        snapshot.close();
        publish.run();
        return bytes;
    }
}
