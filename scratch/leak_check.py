"""Connection storms against an in-process server: Python heap (tracemalloc) after each round."""
import sys, gc, time, tracemalloc, threading, socket
sys.path.insert(0, "tests"); sys.path.insert(0, "scratch")
from servers import ThreadedServer
import conn_storm_lib as cs
tracemalloc.start(5)
with ThreadedServer() as srv:
    hp = int(srv.http_url.rsplit(":", 1)[1])
    snaps = []
    for r in range(6):
        cs.storm(srv.port, hp, 200)
        time.sleep(1.0); gc.collect()
        cur, peak = tracemalloc.get_traced_memory()
        print(f"round {r}: traced {cur/1e6:.1f} MB, tasks {srv.tasks()}", flush=True)
        snaps.append(tracemalloc.take_snapshot())
    for st in snaps[-1].compare_to(snaps[1], "lineno")[:8]:
        print(st)
