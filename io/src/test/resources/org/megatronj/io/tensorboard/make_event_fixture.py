"""Writes events.fixture: the event file TensorBoard's own writer code makes for the scalars of
EventFileWriterTest (file version, then add_scalar events at fixed wall times), for a byte-for-byte
comparison with Megatron-J's EventFileWriter.

Run with the tensorboard package (any 2.x; made with 2.21.0 from a local wheel, not a dependency of
the build): python3 make_event_fixture.py   (writes events.fixture beside this script)
"""
import os

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

HERE = os.path.dirname(os.path.abspath(__file__))

# the scalars of EventFileWriterTest: (tag, value, step, wall time)
SCALARS = [
    ("lm loss", 10.8125, 1, 1765000001.25),
    ("lm loss vs samples", 10.8125, 8, 1765000001.25),
    ("learning-rate", 6e-05, 1, 1765000001.5),
    ("grad-norm", 0.0, 2, 1765000002.0),
    ("batch-size", 8, 0, 1765000002.5),
    ("loss-scale", 4294967296.0, 1234567890123, 1765000003.0),
]

with open(os.path.join(HERE, "events.fixture"), "wb") as f:
    w = RecordWriter(f)
    # what EventFileWriter writes first, with Megatron-J's writer name
    first = event_pb2.Event(wall_time=1765000000.5, file_version="brain.Event:2",
                            source_metadata=event_pb2.SourceMetadata(writer="megatron-j"))
    w.write(first.SerializeToString())
    for tag, value, step, wall in SCALARS:
        # torch.utils.tensorboard.SummaryWriter.add_scalar: summary.scalar(new_style=False), then add_summary
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        event = event_pb2.Event(summary=summary)
        event.wall_time = wall
        event.step = step
        w.write(event.SerializeToString())
