package org.megatronj.bench;

import org.megatronj.memory.cpu.CpuBackend;
import org.megatronj.model.GPTModel;
import org.megatronj.model.MicroBatch;
import org.megatronj.model.optim.AdamW;

/**
 * One {@link GptTrainBenchmark} iteration as a function, for {@link BuildAB}: that defines a copy of this
 * class in each build's class loader, so it only uses what builds have long had (GPTModel, AdamW, the
 * benchmark's shapes). Public members: BuildAB calls them reflectively across the loaders.
 */
public final class BuildStep {
    private final GPTModel model;
    private final AdamW adam;
    private final MicroBatch batch;
    private double loss;

    public BuildStep(String config, int threads) {
        GptTrainBenchmark.Shape shape = GptTrainBenchmark.CONFIGS.get(config);
        if (shape == null) {
            throw new IllegalArgumentException("unknown config '" + config + "', expected one of "
                    + GptTrainBenchmark.CONFIGS.keySet());
        }
        CpuBackend backend = new CpuBackend(threads, true);
        model = new GPTModel(shape.transformerConfig(), backend, 1234);
        adam = new AdamW(model.parameters(), backend, 0.9f, 0.95f, 1e-8f, 0.1f);
        batch = GptTrainBenchmark.randomBatch(shape, 1234);
    }

    /** One iteration (zero grads, forward, backward, AdamW); returns its wall seconds. */
    public double step() {
        long t0 = System.nanoTime();
        model.zeroGrad();
        loss = model.forwardBackward(batch, 1f, 0).meanLoss();
        adam.step(6e-4f);
        return (System.nanoTime() - t0) / 1e9;
    }

    public double loss() {
        return loss;
    }
}
