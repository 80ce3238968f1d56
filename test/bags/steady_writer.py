"""Child process of the kill -9 test: records the synthetic recording steadily until killed.

``python steady_writer.py BAG FLUSH_PERIOD INTERVAL`` offers message i of ``bag_samples`` every
INTERVAL seconds and prints ``sent i MONOTONIC_NS`` after each offer (``ready`` first).
"""

import sys
import time

from bag_samples import TOPICS, sample

from lightwam_ros.bags import BagWriter, project_typestore


def main() -> None:
    bag, flush_period, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    store = project_typestore()
    writer = BagWriter(bag, flush_period=flush_period)
    for topic, msgtype in TOPICS.items():
        writer.add_topic(topic, msgtype)
    writer.set_metadata("recorded_by", "steady_writer")
    print("ready", flush=True)
    index = 0
    while True:
        message = sample(store, index)
        if not writer.offer(message.topic, message.log_time_ns, message.data):
            raise SystemExit(f"message {index} was dropped: {writer.stats()}")
        print(f"sent {index} {time.monotonic_ns()}", flush=True)
        index += 1
        time.sleep(interval)  # pacing of a steady stream, not synchronisation


if __name__ == "__main__":
    main()
