package org.megatronj.cli.serve;

import org.megatronj.model.GPTModel;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The queue between HTTP handler threads and the model: one worker thread owns the model and
 * runs queued jobs, batching waiting sampling jobs together (up to {@code maxBatchRows} sequences
 * and {@code maxBatchTokens} cached tokens); beam searches run alone. A batch that fails is retried
 * job by job, so one failing request never takes others down with it; the worker survives every
 * failure.
 */
public final class GenerationService implements AutoCloseable {
    private record Pending(GenerationJob job, CompletableFuture<GenerationOutput> result) {
    }

    private final GenerationEngine engine;
    private final BeamSearch beamSearch;
    private final int maxBatchRows;
    private final long maxBatchTokens;
    private final LinkedBlockingQueue<Pending> queue = new LinkedBlockingQueue<>();
    private final Thread worker;
    private volatile boolean closed;
    private volatile long batchesRun;
    private volatile long jobsRun;

    public GenerationService(GPTModel model, SpecialTokens special, int maxBatchRows, long maxBatchTokens) {
        this.engine = new GenerationEngine(model, special);
        this.beamSearch = new BeamSearch(model, special);
        this.maxBatchRows = maxBatchRows;
        this.maxBatchTokens = maxBatchTokens;
        this.worker = Thread.ofPlatform().name("generation-worker").daemon(true).start(this::work);
    }

    /** Queues a job; the future completes with its output, or exceptionally with why it failed. */
    CompletableFuture<GenerationOutput> submit(GenerationJob job) {
        if (closed) {
            return CompletableFuture.failedFuture(new IllegalStateException("the server is shutting down"));
        }
        CompletableFuture<GenerationOutput> result = new CompletableFuture<>();
        queue.add(new Pending(job, result));
        return result;
    }

    /** Jobs waiting now. */
    public int queued() {
        return queue.size();
    }

    public long batchesRun() {
        return batchesRun;
    }

    public long jobsRun() {
        return jobsRun;
    }

    private void work() {
        while (!closed) {
            Pending first;
            try {
                first = queue.poll(200, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                return;
            }
            if (first == null) {
                continue;
            }
            List<Pending> batch = new ArrayList<>(List.of(first));
            if (!first.job().request().isBeamSearch()) {
                int rows = first.job().rows();
                int length = first.job().sequenceLength();
                for (Pending p = queue.peek(); p != null && fits(p.job(), rows, length); p = queue.peek()) {
                    queue.poll();   // the only consumer: the peeked element is still the head
                    batch.add(p);
                    rows += p.job().rows();
                    length = Math.max(length, p.job().sequenceLength());
                }
            }
            run(batch);
        }
    }

    private boolean fits(GenerationJob job, int rows, int length) {
        return !job.request().isBeamSearch() && rows + job.rows() <= maxBatchRows
                && (long) (rows + job.rows()) * Math.max(length, job.sequenceLength()) <= maxBatchTokens;
    }

    private void run(List<Pending> batch) {
        batchesRun++;
        try {
            List<GenerationOutput> outputs = execute(batch);
            for (int i = 0; i < batch.size(); i++) {
                batch.get(i).result().complete(outputs.get(i));
            }
            jobsRun += batch.size();
        } catch (RuntimeException | Error e) {
            if (batch.size() == 1) {
                batch.getFirst().result().completeExceptionally(e);
                jobsRun++;
            } else {
                for (Pending p : batch) {   // find the job at fault; the others still get their answers
                    run(List.of(p));
                }
            }
        }
    }

    private List<GenerationOutput> execute(List<Pending> batch) {
        if (batch.size() == 1 && batch.getFirst().job().request().isBeamSearch()) {
            return List.of(beamSearch.search(batch.getFirst().job()));
        }
        return engine.generate(batch.stream().map(Pending::job).toList());
    }

    @Override
    public void close() {
        closed = true;
        worker.interrupt();
        try {
            worker.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (Pending p; (p = queue.poll()) != null; ) {
            p.result().completeExceptionally(new IllegalStateException("the server shut down before this request ran"));
        }
    }
}
