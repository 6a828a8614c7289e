"""POST /score at its documented caps (10M samples, 1M detections) while the monitor runs.
usage: score_http.py HTTP_PORT N_PARALLEL [detections]"""
import json, sys, time, threading, http.client, os
port, n = int(sys.argv[1]), int(sys.argv[2]); ndet = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
body = json.dumps({"generator": "random", "params": {"anomaly_probability": 0.3}, "seed": 1, "first": 0,
                   "last": 9_999_999, "detections": list(range(0, 10 * ndet, 10))}).encode()
print("body bytes", len(body), flush=True)
def rss():
    pid = open(os.path.join(os.path.dirname(__file__), "server.pid")).read().strip()
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(("VmRSS", "VmHWM")): print("  ", l.strip(), flush=True)
rss()
res = []
def one(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300); t = time.monotonic()
    c.request("POST", "/score", body, {"Content-Type": "application/json"}); r = c.getresponse(); d = r.read()
    res.append((i, r.status, round(time.monotonic() - t, 2), d[:120]))
th = [threading.Thread(target=one, args=(i,)) for i in range(n)]; [t.start() for t in th]
stop = False
def watch():
    while not stop:
        rss(); time.sleep(2)
w = threading.Thread(target=watch, daemon=True); w.start()
[t.join() for t in th]; stop = True
for r in res: print(r)
rss()
