"""Async client: two streams on one connection, a live update, then stop.

Run a server first (``wsgen serve``), then::

    python clients/examples/async_client.py [ws://127.0.0.1:8765]
"""
import asyncio
import sys

from wsgen.client import Client, WsgenError

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8765"


async def main() -> None:
    async with Client(URL) as client:
        # A sine at 100 samples/s of stream time, delivered 10x faster than real time.
        sine = await client.subscribe("sine", {"amplitude": 2, "interval": 0.01}, seed=1, speed=10)
        noise = await client.subscribe("normal", {"interval": 0.01}, seed=2, speed=10)
        print(f"subscribed {sine.id} (seed {sine.seed}) and {noise.id}; sine params {sine.params}")

        async def show(sub, n):
            block = await sub.take(n)     # exactly n samples: values, seqs, timestamps
            print(f"{sub.id}: seq {block.seq}..{block.seqs[-1]}  mean {block.values.mean():+.3f}  "
                  f"min {block.values.min():+.3f}  max {block.values.max():+.3f}")

        await asyncio.gather(show(sine, 50), show(noise, 50))   # read both concurrently
        seq = await sine.update(frequency=5)                     # applies from sample `seq` on
        print(f"frequency 5 Hz from seq {seq}")
        await asyncio.gather(show(sine, 50), show(noise, 50))
        try:
            await sine.update(frequency=-1)
        except WsgenError as exc:
            print(f"refused as expected: {exc.code}: {exc.details}")
        await sine.unsubscribe()
        await noise.unsubscribe()


if __name__ == "__main__":
    asyncio.run(main())
