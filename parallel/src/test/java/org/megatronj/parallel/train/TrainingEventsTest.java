package org.megatronj.parallel.train;

import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.megatronj.memory.TensorArena;
import org.megatronj.model.optim.DecayStyle;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainingEventsTest {
    @TempDir
    Path dir;

    @Test
    void aRecordingHoldsOneTrainStepPerIterationAndTheOtherEvents() throws Exception {
        Path jfr = dir.resolve("run.jfr");
        TrainingConfig config = new TrainingConfig(BatchConfig.of(2, 4), ScheduleConfig.iterations(6, 0.1, 0.01, DecayStyle.LINEAR, 0),
                new OptimizerConfig(OptimizerType.SGD, 0, 0.9, 0.999, 1e-8, 0.9, 1.0), new LoggingConfig(1, 3, 1, null, 0),
                new CheckpointConfig(dir.resolve("ckpt"), 3, null, false, false, false), ExitConfig.none(), 1);
        try (Recording recording = new Recording(); TensorArena arena = TensorArena.named("toy")) {
            for (String e : List.of("TrainStep", "ForwardBackward", "OptimizerStep", "DataWait", "CheckpointSave", "Evaluation")) {
                recording.enable("org.megatronj." + e);
            }
            recording.start();
            ToyBigramModel model = new ToyBigramModel(arena, 8, 1);
            new Trainer(config, model, new ToySgd(arena, model.parameters()), new PatternSource(8, 4, 100, 0),
                    new PatternSource(8, 4, 10, 1), null, new TrainingCheckpointer(null, null), null, l -> { }).train();
            recording.stop();
            recording.dump(jfr);
        }
        Map<String, Integer> counts = new TreeMap<>();
        List<Long> iterations = new ArrayList<>();
        for (RecordedEvent e : RecordingFile.readAllEvents(jfr)) {
            counts.merge(e.getEventType().getName(), 1, Integer::sum);
            if (e.getEventType().getName().equals("org.megatronj.TrainStep")) {
                iterations.add(e.getLong("iteration"));
                assertTrue(e.getDouble("loss") > 0);
                assertEquals(4, e.getInt("globalBatchSize"));
            }
        }
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), iterations);
        assertEquals(12, counts.get("org.megatronj.ForwardBackward"));   // 2 micro-batches per iteration
        assertEquals(12, counts.get("org.megatronj.DataWait"));
        assertEquals(6, counts.get("org.megatronj.OptimizerStep"));
        assertEquals(2, counts.get("org.megatronj.CheckpointSave"));     // iterations 3 and 6
        assertEquals(3, counts.get("org.megatronj.Evaluation"));         // at 3, 6, and the final pass
    }
}
