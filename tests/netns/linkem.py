#!/usr/bin/env python3
"""A link emulator for the continuum's end-to-end test, for kernels without `tc netem`.

It relays TCP connections from local addresses to remote ones and gives each direction of each
connection the behaviour of a slow, lossy link: every segment is delivered DELAY later, and a
segment is lost with probability LOSS, which TCP repairs with a retransmission timeout (200 ms,
Linux's minimum) on top of the delay, holding up what follows it, as on a real link.

    linkem.py --delay 40ms --loss 1% 127.0.0.1:7443=10.77.0.1:7443 127.0.0.1:4222=10.77.0.1:4222

It runs inside the network namespace of the host whose link it emulates, and stops on SIGTERM.
"""

import argparse
import asyncio
import math
import random
import signal
import time

SEGMENT = 1448  # bytes of payload in one Ethernet-sized TCP segment
RTO = 0.2  # seconds


def duration(text):
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


def address(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def direction(reader, writer, delay, loss):
    queue = asyncio.Queue()

    async def feed():
        try:
            while data := await reader.read(16384):
                segments = max(1, math.ceil(len(data) / SEGMENT))
                lost = random.random() < 1 - (1 - loss) ** segments
                await queue.put((time.monotonic() + delay + (RTO if lost else 0), data))
        except OSError:
            pass
        await queue.put(None)

    async def deliver():
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    await asyncio.gather(feed(), deliver())


async def relay(listen, target, delay, loss):
    async def connection(local_reader, local_writer):
        try:
            remote_reader, remote_writer = await asyncio.wait_for(asyncio.open_connection(*target), 10)
        except (OSError, asyncio.TimeoutError):
            local_writer.close()
            return
        await asyncio.gather(
            direction(local_reader, remote_writer, delay, loss),
            direction(remote_reader, local_writer, delay, loss),
        )

    server = await asyncio.start_server(connection, *listen)
    async with server:
        await server.serve_forever()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=duration, default=0.04)
    parser.add_argument("--loss", type=lambda t: float(t.rstrip("%")) / 100, default=0.01)
    parser.add_argument("routes", nargs="+", help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = []
    for route in args.routes:
        listen, target = route.split("=")
        tasks.append(asyncio.create_task(relay(address(listen), address(target), args.delay, args.loss)))
    print("linkem: relaying", " ".join(args.routes), flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()


asyncio.run(main())
