"""Prints every TensorBoard scalar series under a run folder as JSON {tag: [[step, value], ...]},
as the tensorboard package's EventAccumulator loads it (it checks each record's CRCs and applies
restarts). Used by the tests of train's event writer."""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
