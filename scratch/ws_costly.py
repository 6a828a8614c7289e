"""Costliest valid WebSocket messages. usage: ws_costly.py WS_URL"""
import asyncio, json, sys, time
import websockets
URL = sys.argv[1]

async def replies(ws, n, types):
    got = []
    while len(got) < n:
        m = json.loads(await ws.recv())
        if m["type"] in types: got.append(m)
    return got

async def main():
    async with websockets.connect(URL, max_size=None, max_queue=None) as ws:
        t = time.monotonic()
        for _ in range(100): await ws.send('{"type":"list"}')
        g = await replies(ws, 100, {"generators", "error"})
        print("100 pipelined list:", round(time.monotonic() - t, 2), "s;", len(json.dumps(g[0])), "bytes each", flush=True)
    # 65 subscriptions: 64 costly compositions (16 injectors) + one over the limit
    inj = [{"kind": k, "placement": {"probability": 0.05}, **({} if k == "spike" else {"min_length": 1, "max_length": 500})}
           for k in ["spike", "level-shift", "noisy-cluster", "variance-change", "trend-change", "frequency-change", "flatline", "dropout"] * 2]
    spec = {"interval": 0.01, "base": {"kind": "sine", "params": {"sample_rate": 100}}, "noise": {"kind": "normal", "std_dev": 0.1}, "anomalies": inj,
            "faults": {"nulls": {"placement": {"probability": 0.05}}, "duplicates": {"placement": {"probability": 0.05}},
                       "out_of_order": {"placement": {"probability": 0.05}}, "jitter": {"placement": {"probability": 0.05}}}}
    async with websockets.connect(URL, max_size=None, max_queue=None) as ws:
        t = time.monotonic()
        for i in range(65):
            await ws.send(json.dumps({"type": "subscribe", "id": f"c{i}", "seed": i, "generator": spec, "start_seq": 1_999_000}))
        rs = await replies(ws, 65, {"subscribed", "error"})
        print("65 costly compositions:", round(time.monotonic() - t, 2), "s;", [(r["type"], r.get("code"), r.get("message", "")[:120]) for r in rs if r["type"] == "error"][:3],
              sum(r["type"] == "subscribed" for r in rs), "subscribed", flush=True)
        await asyncio.sleep(3)
        for i in range(40):   # update storm on compositions
            await ws.send(json.dumps({"type": "update", "id": f"c{i}", "params": {"noise": {"std_dev": 0.2}, "interval": 0.02}}))
        us = await replies(ws, 40, {"updated", "error"})
        print("40 composition updates:", {u["type"] for u in us}, [u.get("message") for u in us if u["type"] == "error"][:2], flush=True)
        await asyncio.sleep(2)
    # scored subscription with many events; big detect messages; score storm
    async with websockets.connect(URL, max_size=None, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": "random", "params": {"anomaly_probability": 0.3, "interval": 0},
                                  "seed": 1, "score": {"window": "nab", "probation": 0.1}, "count": 200_000}))
        last = -1; ended = False
        while not ended:
            m = json.loads(await ws.recv())
            if m["type"] == "data": last = m["seq"] + len(m["values"]) - 1
            ended = m["type"] == "ended"
        print("scored stream ended at", last, flush=True)
    async with websockets.connect(URL, max_size=None, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": "random", "params": {"anomaly_probability": 0.3, "interval": 0},
                                  "seed": 1, "score": {"window": "nab", "probation": 0.1}}))
        last = -1
        while last < 80_000:
            m = json.loads(await ws.recv())
            if m["type"] == "data": last = m["seq"] + len(m["values"]) - 1
        await ws.send(json.dumps({"type": "pause", "id": "s"}))
        t = time.monotonic()
        for k in range(2):
            await ws.send(json.dumps({"type": "detect", "id": "s", "seqs": list(range(k, 60000, 6))[:9000]}))
        for k in range(50):
            await ws.send(json.dumps({"type": "score", "id": "s"}))
        rs = []
        while len(rs) < 53:
            m = json.loads(await ws.recv())
            if m["type"] in ("paused", "detected", "score", "error"): rs.append(m)
        print("2 detect x10000 + 50 score:", round(time.monotonic() - t, 2), "s;", [r["type"] for r in rs[:4]], rs[-1].get("events"), rs[-1].get("last"),
              [r.get("message") for r in rs if r["type"] == "error"][:2], flush=True)
asyncio.run(main())
