package org.megatronj.parallel.comm;

import org.megatronj.parallel.ParallelState;

/**
 * One rank's communicators for every group of its {@link ParallelState}: tensor-, pipeline-, data- and
 * context-parallel, data-with-context (DP x CP), model-parallel (TP x PP) and, on the first and last
 * pipeline stages, the embedding group that all-reduces tied word-embedding gradients. Made by splitting
 * the world communicator, which is collective: every rank of the world calls {@link #create} together.
 *
 * @param data            pure data parallelism: which micro-batches of a global batch a rank runs
 * @param context         the ranks that split this rank's sequences (one member without context parallelism)
 * @param dataWithContext DP x CP, every replica of this rank's weights: gradients are averaged and the
 *                        distributed optimizer shards over it (the same ranks as {@code data} when CP = 1)
 * @param embedding       null on intermediate pipeline stages, which hold no embeddings
 */
public record ProcessGroups(Communicator world, Communicator tensor, Communicator pipeline, Communicator data,
                            Communicator context, Communicator dataWithContext, Communicator modelParallel,
                            Communicator embedding) implements AutoCloseable {

    public static ProcessGroups create(Communicator world, ParallelState state) {
        if (world.size() != state.worldSize() || world.rank() != state.rank()) {
            throw new CommException("process groups: world communicator is member " + world.rank() + " of " + world.size()
                    + " but the parallel state is " + state);
        }
        Communicator tensor = world.split("tp", state.groupIndex("tp"), state.rank());
        Communicator pipeline = world.split("pp", state.groupIndex("pp"), state.rank());
        Communicator data = world.split("dp", state.groupIndex("dp"), state.rank());
        Communicator context = world.split("cp", state.groupIndex("cp"), state.rank());
        // Without context parallelism DP x CP is DP: the gradient reductions keep their "dp" name in errors.
        Communicator dataWithContext = state.contextParallelSize() == 1 ? data
                : world.split("dp-cp", state.groupIndex("cp-dp"), state.rank());
        Communicator modelParallel = world.split("mp", state.groupIndex("tp-pp"), state.rank());
        int embeddingColor = state.embeddingGroup().length > 0 ? state.groupIndex("pp") : -1;
        Communicator embedding = world.split("embd", embeddingColor, state.rank());
        return new ProcessGroups(world, tensor, pipeline, data, context, dataWithContext, modelParallel, embedding);
    }

    public boolean hasEmbeddingGroup() {
        return embedding != null;
    }

    /** Closes the sub-groups and the world communicator, waiting for their outstanding operations. */
    @Override
    public void close() {
        Communicator ownDataWithContext = dataWithContext == data ? null : dataWithContext;   // the DP one when CP = 1
        for (Communicator c : new Communicator[] {embedding, modelParallel, ownDataWithContext, context, data, pipeline,
                tensor, world}) {
            if (c != null) {
                c.close();
            }
        }
    }
}
