"""Raw-socket WebSocket helpers for the attack scripts (no library politeness)."""
import base64, json, os, socket, struct, time

def handshake(host, port, path="/", extra="", rcvbuf=None, timeout=5.0):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")
    s.sendall(req.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(4096)
        if not c:
            raise ConnectionError("closed during handshake: %r" % buf)
        buf += c
    head, rest = buf.split(b"\r\n\r\n", 1)
    return s, head.decode(), rest

def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    k = os.urandom(4)
    return hdr + k + bytes(c ^ k[i % 4] for i, c in enumerate(payload))

def text(obj_or_str):
    p = obj_or_str if isinstance(obj_or_str, (bytes, bytearray)) else (
        obj_or_str if isinstance(obj_or_str, str) else json.dumps(obj_or_str)).encode()
    return frame(1, p)

class Reader:
    """Reads server frames (unmasked) from a socket, with a leftover buffer."""
    def __init__(self, s, rest=b""):
        self.s, self.buf = s, rest
    def _need(self, n):
        while len(self.buf) < n:
            c = self.s.recv(65536)
            if not c:
                raise EOFError("eof")
            self.buf += c
    def next(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]; n = b1 & 0x7F; off = 2
        if n == 126:
            self._need(4); n = struct.unpack("!H", self.buf[2:4])[0]; off = 4
        elif n == 127:
            self._need(10); n = struct.unpack("!Q", self.buf[2:10])[0]; off = 10
        self._need(off + n)
        p = self.buf[off:off + n]; self.buf = self.buf[off + n:]
        return b0 & 0x0F, p
    def until(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            op, p = self.next()
            if op == 8:
                return ("close", struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None, p[2:].decode("utf8", "replace"))
            if op == 1:
                m = json.loads(p)
                if pred(m):
                    return m
        raise TimeoutError
    def close_code(self, timeout=5.0):
        """Skip frames until a close frame or EOF; returns code or 'eof'."""
        self.s.settimeout(timeout)
        try:
            while True:
                op, p = self.next()
                if op == 8:
                    return struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005, p[2:].decode("utf8", "replace")
        except EOFError:
            return "eof", ""
        except (ConnectionResetError, socket.timeout) as e:
            return type(e).__name__, ""

def rst(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
