package org.megatronj.parallel.pipeline;

import org.megatronj.parallel.ParallelState;
import org.megatronj.parallel.comm.Communicator;

/**
 * The point-to-point links of one pipeline: activations flow forward to the next stage on
 * {@code forward}, their gradients back to the previous stage on {@code backward}. Both have the
 * members of this rank's pipeline group, indexed by pipeline rank. Two communicators keep each
 * direction's messages in their own FIFO order: with virtual stages the last stage also sends
 * activations to the first, so one link could otherwise carry both kinds interleaved.
 */
public record PipelineChannels(Communicator forward, Communicator backward) implements AutoCloseable {

    /** Splits the world into the pipeline groups twice (a collective over all ranks). */
    public static PipelineChannels create(Communicator world, ParallelState state) {
        int color = state.groupIndex("pp");
        Communicator forward = world.split("pp-fwd", color, state.rank());
        Communicator backward = world.split("pp-bwd", color, state.rank());
        return new PipelineChannels(forward, backward);
    }

    public int stages() {
        return forward.size();
    }

    public int stage() {
        return forward.rank();
    }

    @Override
    public void close() {
        forward.close();
        backward.close();
    }
}
