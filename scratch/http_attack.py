"""HTTP endpoints: absurd parameters (status, time to answer) and many concurrent streams closed abruptly.
usage: http_attack.py HTTP_PORT"""
import socket, struct, sys, time, threading, urllib.parse
H = "127.0.0.1"; P = int(sys.argv[1])
def get(path, read=4000, timeout=10):
    s = socket.create_connection((H, P)); s.settimeout(timeout); t = time.monotonic()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    buf = b""
    try:
        while len(buf) < read:
            c = s.recv(65536)
            if not c: break
            buf += c
    except socket.timeout: pass
    s.close()
    return buf.split(b"\r\n", 1)[0].decode(), round(time.monotonic() - t, 3), buf.split(b"\r\n\r\n", 1)[-1][:160]
absurd = ["/sine?amplitude=1e308&frequency=1e308&sample_rate=1e-308&interval=0&count=3",
          "/sine?interval=-1", "/sine?interval=nan", "/sine?interval=inf", "/sine?count=0", "/sine?count=99999999999999999999999",
          "/sine?start_seq=9007199254740992&count=2&interval=0", "/sine?start_seq=9007199254740993", "/sine?start_seq=-1",
          "/sine?seed=18446744073709551616", "/sine?seed=-1", "/sine?speed=0", "/sine?speed=1e7", "/sine?speed=max&count=3&format=bogus",
          "/sine?duration=1e300", "/sine?duration=1e-300&interval=0", "/sine?" + "amplitude=1&" * 5000, "/sine?amplitude=" + "9" * 5000,
          "/sine?frequency=1e9&sample_rate=1e-9&interval=0&count=3&speed=max", "/random-square?minimum_interval=1&maximum_interval=1&min_anomaly_duration=1&max_anomaly_duration=1&start_seq=39999999&count=2&interval=0",
          "/count-per-duration?num_anomalies=10000&duration=1&interval=0&count=5&speed=max", "/periodic-spike?spike_interval=1e-9&interval=1e-9&count=3&speed=max",
          "/anomalies/clustered?minimum_interval=1e9&maximum_interval=1e9&start_seq=9007199254740000&count=1",
          "/pattern?values=" + ",".join(["1"] * 10001), "/steps?steps=" + ",".join(["1,0"] * 5000) + "&count=3&speed=max",
          "/seasonal?start=9999-12-31&count=2&speed=max", "/seasonal?start=-1e300", "/replay?file=../../etc/passwd", "/replay?file=%00",
          "/sine?format=sse&count=2&speed=max", "/composite?spec=" + urllib.parse.quote('{"base":{"kind":"sine"},"anomalies":[' + ",".join(['{"kind":"spike","placement":{"mode":"indices","indices":[1,2,3]}}'] * 17) + ']}'),
          "/%2e%2e/%2e%2e/etc/passwd", "/sine/../../", "/ws", "/docs", "/openapi.json", "/healthz", "/metrics", "/streams"]
for a in absurd:
    st, t, body = get(a)
    print(f"{t:7.3f}s {st[:30]:30} {a[:70]:70} {body[:150]!r}", flush=True)
# many concurrent speed=max streams closed abruptly
def abrupt(i, res):
    try:
        s = socket.create_connection((H, P)); s.sendall(b"GET /normal?speed=max&format=ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.recv(65536); time.sleep(0.05 * (i % 5))
        if i % 2: s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close(); res.append(1)
    except Exception as e: res.append(repr(e))
for rnd in range(3):
    res = []; th = [threading.Thread(target=abrupt, args=(i, res)) for i in range(100)]; [t.start() for t in th]; [t.join() for t in th]
    print("round", rnd, "abrupt closes:", res.count(1), [r for r in res if r != 1][:3], flush=True)
time.sleep(1.5)
print(get("/healthz"))
