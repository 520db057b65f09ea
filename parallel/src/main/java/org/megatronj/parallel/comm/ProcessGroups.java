package org.megatronj.parallel.comm;

import org.megatronj.parallel.ParallelState;

/**
 * One rank's communicators for every group of its {@link ParallelState}: tensor-, pipeline- and
 * data-parallel, model-parallel (TP x PP) and, on the first and last pipeline stages, the
 * embedding group that all-reduces tied word-embedding gradients. Made by splitting the world
 * communicator, which is collective: every rank of the world calls {@link #create} together.
 *
 * @param embedding null on intermediate pipeline stages, which hold no embeddings
 */
public record ProcessGroups(Communicator world, Communicator tensor, Communicator pipeline, Communicator data,
                            Communicator modelParallel, Communicator embedding) implements AutoCloseable {

    public static ProcessGroups create(Communicator world, ParallelState state) {
        if (world.size() != state.worldSize() || world.rank() != state.rank()) {
            throw new CommException("process groups: world communicator is member " + world.rank() + " of " + world.size()
                    + " but the parallel state is " + state);
        }
        Communicator tensor = world.split("tp", state.groupIndex("tp"), state.rank());
        Communicator pipeline = world.split("pp", state.groupIndex("pp"), state.rank());
        Communicator data = world.split("dp", state.groupIndex("dp"), state.rank());
        Communicator modelParallel = world.split("mp", state.groupIndex("tp-pp"), state.rank());
        int embeddingColor = state.embeddingGroup().length > 0 ? state.groupIndex("pp") : -1;
        Communicator embedding = world.split("embd", embeddingColor, state.rank());
        return new ProcessGroups(world, tensor, pipeline, data, modelParallel, embedding);
    }

    public boolean hasEmbeddingGroup() {
        return embedding != null;
    }

    /** Closes the sub-groups and the world communicator, waiting for their outstanding operations. */
    @Override
    public void close() {
        for (Communicator c : new Communicator[] {embedding, modelParallel, data, pipeline, tensor, world}) {
            if (c != null) {
                c.close();
            }
        }
    }
}
