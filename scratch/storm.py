"""Subscribe/unsubscribe/pause/resume/update storm on one connection; every stream's
seqs must be continuous and every value exact against a fresh generator with the
same updates applied at the reported seqs.
usage: storm.py WS_URL N_OPS SEED [max_subs]"""
import asyncio, json, random, sys, time
import websockets
import wsgen

KINDS = {
    "sine": lambda R: {"frequency": R.choice([0.5, 1, 3, 7.5])},
    "cosine": lambda R: {"amplitude": R.choice([1, 2, 5])},
    "square": lambda R: {"frequency": R.choice([1, 2, 5]), "duty_cycle": R.choice([0.2, 0.5, 0.9])},
    "normal": lambda R: {"mean": R.choice([0, 1, -3]), "std_dev": R.choice([0.5, 1, 2])},
    "uniform": lambda R: {"max_val": R.choice([1, 2, 10])},
    "random-walk": lambda R: {"drift": R.choice([0, 0.1]), "volatility": R.choice([0.5, 1])},
    "ou": lambda R: {"theta": R.choice([0.5, 1, 2])},
    "random": lambda R: {"anomaly_probability": R.choice([0.05, 0.5])},
}
INTERVALS = [0.005, 0.01, 0.01, 0.02, 0.05, 0.1]

class Seg:
    def __init__(self, id, kind, params, seed, start, extra):
        self.id, self.kind, self.params, self.seed, self.start, self.extra = id, kind, params, seed, start, extra
        self.updates = []; self.vals = {}; self.dups = 0; self.end = None; self.paused = False

async def main(url, nops, rseed, max_subs):
    R = random.Random(rseed)
    segs = []; active = {}; pending = []; errors = []; done = asyncio.Event(); counter = [0]
    byid = {}
    async with websockets.connect(url, max_size=None, max_queue=None) as ws:
        async def reader():
            async for raw in ws:
                m = json.loads(raw)
                msgs = m["messages"] if m["type"] == "batch" else [m]
                for m in msgs:
                    t = m["type"]
                    if t == "data":
                        seg = byid[m["id"]]
                        if seg.paused == "confirmed": errors.append(("data while paused", m["id"], m["seq"]))
                        for i, v in enumerate(m["values"]):
                            s = m["seq"] + i
                            if s in seg.vals: seg.dups += 1
                            seg.vals[s] = v
                        continue
                    if t == "ended":
                        errors.append(("unexpected ended", m)); continue
                    op, seg = pending.pop(0)
                    if t == "error":
                        errors.append((op, m)); continue
                    if t == "updated": seg.updates.append((m["seq"], op["params"]))
                    elif t == "unsubscribed": seg.end = m["seq"]
                    elif t == "paused": seg.paused = "confirmed"
                    elif t == "resumed": seg.paused = False
                    if not pending and counter[0]: done.set(); return
        rt = asyncio.create_task(reader())
        def send(op, seg):
            pending.append((op, seg)); return ws.send(json.dumps(op))
        def new_sub(id, start=0):
            kind = R.choice(list(KINDS))
            if kind in ("random-walk", "ou") and start > 1000: start = 1000
            params = {"interval": R.choice(INTERVALS)}; params.update(KINDS[kind](R))
            extra = {}
            if R.random() < 0.3: extra["batch"] = True
            if R.random() < 0.2: extra["speed"] = R.choice([0.5, 2, 5])
            seg = Seg(id, kind, params, R.randrange(1 << 40), start, extra)
            segs.append(seg); active[id] = seg; byid[id] = seg
            op = {"type": "subscribe", "id": id, "generator": kind, "params": params, "seed": seg.seed, "start_seq": start, **extra}
            return send(op, seg)
        t0 = time.monotonic()
        for i in range(nops):
            r = R.random()
            if len(active) < max_subs and (r < 0.15 or not active):
                await new_sub(f"s{len(segs)}", start=R.choice([0, 0, 1000, 10**9]))
                continue
            id = R.choice(list(active)); seg = active[id]
            if r < 0.45:
                p = KINDS[seg.kind](R)
                if R.random() < 0.4: p["interval"] = R.choice(INTERVALS)
                op = {"type": "update", "id": id, "params": p}
                if R.random() < 0.2: op["speed"] = R.choice([0.5, 1, 2, 5])
                await send(op, seg)
            elif r < 0.6:
                seg.paused = seg.paused or "asked"; await send({"type": "pause", "id": id}, seg)
            elif r < 0.75:
                await send({"type": "resume", "id": id}, seg)
            elif r < 0.85:
                del active[id]; await send({"type": "unsubscribe", "id": id}, seg)
            else:
                await asyncio.sleep(R.choice([0.001, 0.01, 0.03, 0.08]))
        for id, seg in list(active.items()):
            await send({"type": "unsubscribe", "id": id}, seg)
        counter[0] = 1
        if not pending: done.set()
        await asyncio.wait_for(done.wait(), 30)
        took = time.monotonic() - t0
        rt.cancel()
    # verify
    bad = []; total = 0
    for seg in segs:
        if seg.end is None: bad.append((seg.id, seg.kind, seg.params, seg.start, seg.extra, "no end", len(seg.vals))); continue
        keys = sorted(seg.vals)
        exp = list(range(seg.start, seg.end))
        if keys != exp:
            miss = sorted(set(exp) - set(keys))[:5]; extra = sorted(set(keys) - set(exp))[:5]
            bad.append((seg.id, seg.kind, seg.extra, "seq gap/extra", miss, extra, len(keys), len(exp))); continue
        if seg.dups: bad.append((seg.id, "dups", seg.dups))
        g = wsgen.create(seg.kind, seg.params, seed=seg.seed, start_seq=seg.start)
        ref = []; pos = seg.start
        for useq, p in seg.updates:
            if useq > pos: ref.extend(g.take(useq - pos).values.tolist()); pos = useq
            g.update(p)
        if seg.end > pos: ref.extend(g.take(seg.end - pos).values.tolist())
        got = [seg.vals[s] for s in exp]
        diff = [i for i, (a, b) in enumerate(zip(got, ref)) if not (a == b)]
        if diff: bad.append((seg.id, seg.kind, "value mismatch", len(diff), "first at seq", seg.start + diff[0], got[diff[0]], ref[diff[0]], seg.updates[:4]))
        total += len(exp)
    print(json.dumps({"ops": nops, "segments": len(segs), "samples_checked": total, "errors": errors[:5], "n_errors": len(errors),
                      "bad": bad[:8], "n_bad": len(bad), "seconds": round(took, 2)}, default=str))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 64))
