"""A load client for the throughput benchmark: one DEALER socket that pipelines requests to a server.

    python load_client.py ENDPOINT FRAMES_FILE COUNT WINDOW

Reads the request frames (one per line), connects, prints ``ready``, waits for a line on stdin, then
sends COUNT requests in turn, never more than WINDOW without their reply, prints ``done SECONDS``
and exits. A process of its own, so that the clients do not share one interpreter's lock.
"""

import sys
import time
from pathlib import Path

import zmq


def main() -> None:
    endpoint, frames_file, count, window = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    frames = frames_file.read_bytes().splitlines()
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    sent = received = 0
    while received < count:
        while sent < count and sent - received < window:
            socket.send(frames[sent % len(frames)])
            sent += 1
        socket.recv()
        received += 1
    print(f"done {time.perf_counter() - started}", flush=True)
    socket.close()
    context.term()


if __name__ == "__main__":
    main()
