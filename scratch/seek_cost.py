"""Time of one costly composition subscribe (far start_seq) and 65 pipelined. usage: seek_cost.py WS_URL N"""
import asyncio, json, sys, time
import websockets
inj = [{"kind": k, "placement": {"probability": 0.05}, **({} if k == "spike" else {"min_length": 1, "max_length": 500})}
       for k in ["spike", "level-shift", "noisy-cluster", "variance-change", "trend-change", "frequency-change", "flatline", "dropout"] * 2]
spec = {"interval": 0.01, "base": {"kind": "sine", "params": {"sample_rate": 100}}, "noise": {"kind": "normal", "std_dev": 0.1}, "anomalies": inj,
        "faults": {"nulls": {"placement": {"probability": 0.05}}, "duplicates": {"placement": {"probability": 0.05}},
                   "out_of_order": {"placement": {"probability": 0.05}}, "jitter": {"placement": {"probability": 0.05}}}}
async def main(url, n):
    async with websockets.connect(url, max_size=None, max_queue=None, ping_interval=None) as ws:
        t = time.monotonic()
        for i in range(n):
            await ws.send(json.dumps({"type": "subscribe", "id": f"c{i}", "seed": i, "generator": spec, "start_seq": 1_999_000, "params": {}}))
        got = 0; first = None
        while got < n:
            m = json.loads(await ws.recv())
            if m["type"] in ("subscribed", "error"):
                got += 1; first = first or round(time.monotonic() - t, 2)
                if m["type"] == "error": print(m.get("message")[:200])
        print(n, "subscribes: first reply", first, "s, all", round(time.monotonic() - t, 2), "s", flush=True)
if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
