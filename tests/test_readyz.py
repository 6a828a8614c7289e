"""``/readyz``: ready while accepting streams, 503 from the start of a
graceful shutdown, while ``--drain-delay`` keeps everything else working;
then the 1001s. Real servers, real clients."""
from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from servers import ServeProcess, async_wait_until, running_server

pytestmark = pytest.mark.timeout(60)


async def test_readyz_is_public_and_false_once_stop_begins():
    async with running_server(token="t0k") as running:
        async with httpx.AsyncClient(base_url=running.http_url) as http:
            r = await http.get("/readyz")           # no token needed, like /healthz (probes send none)
            assert (r.status_code, r.json()) == (200, {"ready": True, "status": "accepting streams"})
            assert r.headers["cache-control"] == "no-store"
            assert (await http.get("/generators")).status_code == 401
            running.readiness.draining()
            r = await http.get("/readyz")
            assert (r.status_code, r.json()) == (503, {"ready": False, "status": "shutting down"})
            assert (await http.get("/healthz")).status_code == 200   # alive all the same


async def test_sigterm_turns_readyz_false_then_streams_go_on_for_the_drain_delay_then_1001():
    with ServeProcess("--drain-delay", "1.5", "--graceful-timeout", "3") as proc:
        async with httpx.AsyncClient(base_url=proc.http_url) as http:
            assert (await http.get("/readyz")).status_code == 200
            async with connect(f"ws://127.0.0.1:{proc.http_port}/ws/sine?interval=0.01&seed=1") as ws:
                assert json.loads(await ws.recv())["type"] == "subscribed"
                seqs: list[int] = []
                codes: list[int] = []

                async def read() -> None:
                    try:
                        async for raw in ws:
                            m = json.loads(raw)
                            seqs.extend(range(m["seq"], m["seq"] + len(m["values"])))
                    except ConnectionClosed:
                        pass

                reader = asyncio.create_task(read())
                assert await async_wait_until(lambda: len(seqs) >= 5)
                proc.signal(signal.SIGTERM)

                async def not_ready() -> bool:
                    codes.append((await http.get("/readyz")).status_code)
                    return codes[-1] == 503

                while not await not_ready():
                    await asyncio.sleep(0.02)
                at_503 = seqs[-1]
                # the HTTP port still serves streams and the WebSocket still streams during the drain
                r = await http.get("/sine?seed=1&count=3&speed=max")
                assert r.status_code == 200 and len(r.text.splitlines()) == 3
                await asyncio.wait_for(reader, 20)
                assert ws.close_code == 1001
                # samples kept coming after /readyz said 503, with no gap, until the 1001
                assert seqs == list(range(seqs[0], seqs[-1] + 1))
                assert seqs[-1] >= at_503 + 20     # >= 0.2 s of stream time after readiness turned false
        assert proc.wait(20) == 0
