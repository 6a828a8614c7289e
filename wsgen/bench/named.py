"""``wsgen bench named``: what a subscriber of a shared named stream costs.

N subscriptions to one signal (sine, ``--interval`` seconds) on one
connection's session, served for ``--wakeups`` wake-ups of the pump's work
(``take`` + the data message's JSON, the two costs per message of
:mod:`wsgen.server.ws` besides the socket), timed in process without sockets, in
two ways:

* **private**: N ordinary subscriptions, each with its own generator (what
  N dashboards subscribing to ``sine`` with the same seed cost today);
* **named**: N subscriptions to one named stream: the samples of a wake-up
  are generated once, each subscriber slices them.

The clock is simulated (each wake-up is the next sample's due time), so the
figure is CPU per data message, not lateness.

``--sockets S`` adds a run through real sockets: a ``wsgen serve`` child
process (with a scenario holding the named stream), ``--connections``
clients in this process with ``batch: true`` subscriptions, each mode
measured for S seconds: the server's CPU seconds (user + system, from
/proc) per data message received, and the messages received per second.

Prints microseconds per message of each and their ratio; ``--json`` keeps them.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

from wsgen.protocol import encoding


#: The composition of ``--signal composition``: a plant sensor (sine + noise + level shifts).
COMPOSITION = {"base": {"kind": "sine", "params": {"amplitude": 5, "frequency": 0.5}, "offset": 80},
               "noise": {"kind": "normal", "std_dev": 0.2},
               "anomalies": [{"kind": "level-shift", "placement": {"mode": "periodic", "every": 600},
                              "min_length": 20, "max_length": 40, "height": -4}]}


def _private(n: int, interval: float, wakeups: int, signal: str) -> float:
    from wsgen.server.config import Settings
    from wsgen.protocol.session import Session
    clock = [1000.0]
    session = Session(Settings(align_s=0.0, max_subscriptions=n), clock=lambda: clock[0], wall=lambda: 1.7e9)
    for i in range(n):
        if signal == "sine":
            message = {"generator": "sine", "params": {"interval": interval, "frequency": 0.5}}
        else:
            message = {"generator": {**COMPOSITION, "interval": interval}}
        session.handle(encoding.dumps({"type": "subscribe", "id": f"s{i}", "seed": 7, **message}))
    subs = list(session.subscriptions.values())
    dumps = encoding.dumps
    gc.collect()
    started = time.perf_counter()
    for k in range(1, wakeups + 1):
        now = 1000.0 + k * interval
        for sub in subs:
            chunk = sub.take(now, 8192)
            dumps(chunk.to_json())
    return (time.perf_counter() - started) / (n * wakeups) * 1e6


def _named(n: int, interval: float, wakeups: int, signal: str) -> float:
    from wsgen.server.config import Settings
    from wsgen.streams.named import NamedStreams, StreamDef
    from wsgen.protocol.session import Session
    named = NamedStreams()
    if signal == "sine":
        d = StreamDef(name="bench/sine", generator="sine", params={"frequency": 0.5}, seed=7, interval=interval)
    else:
        d = StreamDef(name="bench/sine", generator=COMPOSITION, seed=7, interval=interval)
    named.apply(named.define_entry(d))
    stream = named.streams["bench/sine"]
    settings = Settings(align_s=0.0, max_subscriptions=n)
    settings.named = named
    session = Session(settings)
    for i in range(n):
        session.handle(encoding.dumps({"type": "subscribe", "id": f"s{i}", "stream": "bench/sine"}))
    subs = list(session.subscriptions.values())
    seq = subs[0].generator.seq
    for sub in subs:             # (subscribed a few microseconds apart: the same start for all)
        sub.generator.seq = seq
    dumps = encoding.dumps
    gc.collect()
    started = time.perf_counter()
    for k in range(wakeups):
        now = stream.pacer.due_time(seq + k)
        for sub in subs:
            chunk = sub.take(now, 8192)
            dumps(chunk.to_json())
    return (time.perf_counter() - started) / (n * wakeups) * 1e6


async def _socket_run(url: str, mode: str, n: int, connections: int, interval: float, seconds: float,
                      server) -> dict:
    """Server CPU per data message with ``n`` subscriptions (``mode``:
    private or named) over ``connections`` connections, measured for
    ``seconds`` once every subscription is confirmed."""
    import asyncio

    import orjson
    from websockets.asyncio.client import connect

    per = max(1, n // connections)
    counts = [0] * connections
    ready = asyncio.Event()
    confirmed = [0]
    stop = asyncio.Event()

    async def one(ci: int) -> None:
        async with connect(url, max_size=None, max_queue=None) as ws:
            for k in range(per):
                msg = {"type": "subscribe", "id": f"s{k}", "batch": True}
                if mode == "named":
                    msg["stream"] = "bench/sine"
                else:
                    msg.update(generator="sine", seed=7, params={"interval": interval, "frequency": 0.5})
                await ws.send(orjson.dumps(msg).decode())
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except asyncio.TimeoutError:
                    continue
                m = orjson.loads(raw)
                kind = m.get("type")
                if kind == "batch":
                    if ready.is_set():
                        counts[ci] += len(m["messages"])
                elif kind == "data":
                    if ready.is_set():
                        counts[ci] += 1
                elif kind == "subscribed":
                    confirmed[0] += 1
                    if confirmed[0] == per * connections:
                        ready.set()
                elif kind == "error":
                    raise RuntimeError(f"server error: {m}")

    tasks = [asyncio.create_task(one(ci)) for ci in range(connections)]
    try:
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(1.0)                     # past the first wake-ups
        start_counts, cpu0, t0 = sum(counts), server.cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        got, cpu, elapsed = sum(counts) - start_counts, server.cpu_seconds() - cpu0, time.monotonic() - t0
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"mode": mode, "subscriptions": per * connections, "messages": got,
            "messages_per_s": got / elapsed, "server_cpu_pct": 100 * cpu / elapsed,
            "server_cpu_us_per_msg": cpu / got * 1e6 if got else float("nan")}


def _sockets(args) -> list[dict]:
    import asyncio
    import os
    import tempfile

    from wsgen.bench.loadgen import ServerProcess
    with tempfile.TemporaryDirectory() as folder:
        scenario = os.path.join(folder, "bench.yaml")
        with open(scenario, "w") as fh:
            fh.write(f"streams:\n  - {{name: bench/sine, generator: sine, params: {{frequency: 0.5}}, seed: 7, "
                     f"interval: {args.interval}}}\n")
        server = ServerProcess.start(extra=["--scenario", scenario], http=False)
        try:
            return [asyncio.run(_socket_run(server.ws_url, mode, args.subscribers, args.connections,
                                            args.interval, args.sockets, server))
                    for mode in ("private", "named")]
        finally:
            server.stop()


def run(args) -> int:
    from wsgen.bench import _environment, _write_json
    rows = []
    for _ in range(args.repeat):
        rows.append({"private_us": _private(args.subscribers, args.interval, args.wakeups, args.signal),
                     "named_us": _named(args.subscribers, args.interval, args.wakeups, args.signal)})
    private = statistics.median(r["private_us"] for r in rows)
    shared = statistics.median(r["named_us"] for r in rows)
    print(f"{args.subscribers} subscriptions to one {args.signal} at {args.interval} s, {args.wakeups} wake-ups, "
          f"{args.repeat} run(s), in process (take + JSON per data message):")
    print(f"  private streams: {private:.2f} us per message (runs: "
          + ", ".join(f"{r['private_us']:.2f}" for r in rows) + ")")
    print(f"  named stream:    {shared:.2f} us per message (runs: "
          + ", ".join(f"{r['named_us']:.2f}" for r in rows) + ")")
    print(f"  named / private: {shared / private:.2f}")
    sockets = _sockets(args) if args.sockets else []
    for row in sockets:
        print(f"  through sockets, {row['mode']:7s}: {row['subscriptions']} subscriptions over {args.connections} "
              f"connections, {row['messages_per_s']:.0f} data messages/s, server {row['server_cpu_pct']:.1f} % of "
              f"a core = {row['server_cpu_us_per_msg']:.2f} us per message")
    if args.json:
        _write_json(args.json, {"scenario": "named", "environment": _environment(),
                                "subscribers": args.subscribers, "interval": args.interval, "signal": args.signal,
                                "wakeups": args.wakeups, "runs": rows, "median_private_us": private,
                                "median_named_us": shared, "sockets": sockets})
        print(f"wrote {args.json}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--signal", choices=["sine", "composition"], default="sine",
                   help="sine, or a composition (sine + noise + level shifts: costlier to generate)")
    p.add_argument("--subscribers", type=int, default=1000, help="subscriptions (default 1000)")
    p.add_argument("--interval", type=float, default=0.01, help="sample interval in seconds (default 0.01)")
    p.add_argument("--wakeups", type=int, default=200, help="wake-ups timed per run (default 200)")
    p.add_argument("--repeat", type=int, default=3, help="runs; the median is reported (default 3)")
    p.add_argument("--sockets", type=float, default=0.0, metavar="SECONDS",
                   help="also measure through real sockets for this many seconds per mode (server in a child "
                        "process, sine stream); 0: off (default)")
    p.add_argument("--connections", type=int, default=20, help="connections of the --sockets run (default 20)")
    p.add_argument("--json", default="bench-results/named.json", help="where to write the numbers")
