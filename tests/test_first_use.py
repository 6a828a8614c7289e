"""What a new user meets first (issue 17), on a real server over every
transport: one name for the sample interval, text lines ``json.loads`` reads,
stream controls that mean the same over HTTP and WebSocket."""
from __future__ import annotations

import json

import httpx
import numpy as np
from websockets.asyncio.client import connect

import wsgen
from wsgen.generators import ANOMALY_KINDS


async def recv_json(ws) -> dict:
    return json.loads(await ws.recv())


async def ws_values(url: str, n: int) -> tuple[dict, list[float], list[float]]:
    """The ``subscribed`` reply, the first ``n`` values and their stamps ``t``
    of a URL subscription."""
    values, stamps = [], []
    async with connect(url) as ws:
        ack = await recv_json(ws)
        if ack["type"] != "subscribed":
            return ack, values, stamps
        while len(values) < n:
            msg = await recv_json(ws)
            if msg["type"] == "data":
                values += msg["values"]
                stamps += [msg["t"] + i * msg["dt"] for i in range(len(msg["values"]))]
    return ack, values[:n], stamps[:n]


# -- item 2: ``interval`` everywhere, ``data_interval`` an alias ------------------------

async def test_interval_and_data_interval_on_every_transport(full_server):
    http, ws = full_server.http_url, full_server.ws_url
    async with httpx.AsyncClient(timeout=10) as client:
        for kind in ANOMALY_KINDS:
            ref = wsgen.create(kind, {"interval": 0.5}, seed=11).take(60).values
            for name in ("interval", "data_interval"):
                # HTTP: the original's text lines and ndjson stamps 0.5 s apart
                r = await client.get(f"{http}/anomalies/{kind}?seed=11&speed=max&count=60&{name}=0.5&format=ndjson")
                assert r.status_code == 200, r.text
                rows = [json.loads(line) for line in r.text.splitlines()]
                assert [row["value"] for row in rows] == ref.tolist()
                assert np.allclose(np.diff([row["t"] for row in rows]), 0.5)
                # WebSocket URL subscription
                ack, values, stamps = await ws_values(f"{ws}/{kind}?seed=11&speed=max&{name}=0.5", 60)
                assert ack["params"]["interval"] == 0.5 and "data_interval" not in ack["params"]
                assert values == ref.tolist() and np.allclose(np.diff(stamps), 0.5)
            # both names: 422 naming both, over HTTP, and an error over WebSocket
            r = await client.get(f"{http}/{kind}?interval=0.5&data_interval=0.5")
            assert r.status_code == 422
            body = r.json()
            assert body["details"][0]["field"] == "data_interval"
            assert "give only one of interval, data_interval" in body["message"]
            ack, _, _ = await ws_values(f"{ws}/{kind}?interval=0.5&data_interval=0.5", 1)
            assert ack["type"] == "error" and ack["code"] == "invalid_params"
            assert "give only one of interval, data_interval" in ack["message"]
        # compositions pace with ``interval``; the presets take either name
        r = await client.post(f"{http}/composite?seed=11&speed=max&count=5&format=ndjson",
                              json={"interval": 0.25, "base": {"kind": "constant", "params": {"value": 1}}})
        assert r.status_code == 200
        assert np.allclose(np.diff([json.loads(x)["t"] for x in r.text.splitlines()]), 0.25)
        r = await client.get(f"{http}/composite/presets")
        assert all(p["interval"] == 1.0 for p in r.json()["presets"].values())
    # the catalogue says so
    async with connect(ws) as conn:
        await conn.send(json.dumps({"type": "list"}))
        gens = {g["name"]: g for g in (await recv_json(conn))["generators"]}
    assert all(g["interval_field"] == "interval" for g in gens.values())
    assert {n for n, g in gens.items() if g["param_aliases"]} == set(ANOMALY_KINDS)
