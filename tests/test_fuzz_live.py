"""Bad input over real sockets: the server answers or closes properly, and
keeps serving everyone else.

* hypothesis-generated messages (random JSON, mutated valid messages, NaN,
  huge numbers, deep nesting, long and odd unicode strings, duplicate keys,
  missing fields, binary garbage) sent over one live connection that also
  holds a paced subscription: every message gets one ``error`` (or its
  ordinary reply) or a proper close, the other subscription's data stays
  gap-free, and new connections are still accepted;
* malformed frames written on a raw TCP socket after a valid handshake
  (garbage, reserved bits, unmasked frames, bad opcodes, bad control frames,
  invalid UTF-8, bad close codes) close that connection with 1002 (1007 for
  UTF-8), an oversized message with 1009 without the server reading it
  whole;
* half-open clients (never finish the handshake; finish it and then go
  silent) are dropped by ``open_timeout_s`` / keepalive pings.

The server runs in a background thread with its own event loop (the fuzz
test is synchronous: hypothesis drives a ``websockets.sync`` client).
"""
from __future__ import annotations

import json
import os
import select
import socket
import struct
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from wsgen.protocol import messages as P
from wsgen.protocol.encoding import decode_binary
from wsgen.engine.pacing import Pacer
from wsgen.engine import GENERATORS
from reference import DOCUMENTED_REPLIES, check_documented_reply
from servers import LOADED_LATENESS_S, ThreadedServer, wait_until

pytestmark = [pytest.mark.timeout(120),
              # the server thread draws seeds from ``random`` while hypothesis generates: not our strategies
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")]

MAX_MESSAGE = 65536
PING = 0.5          # keepalive ping interval (and timeout) of the test server
OPEN_TIMEOUT = 0.5  # seconds to finish the handshake


@pytest.fixture(scope="module")
def srv():
    s = ThreadedServer(http_port=0, max_message_bytes=MAX_MESSAGE, ping_interval_s=PING, ping_timeout_s=PING,
                       open_timeout_s=OPEN_TIMEOUT, max_subscriptions=16)
    yield s
    s.stop()


# -- a live client with a paced subscription that must stay gap-free ----------------

class Keeper:
    """One connection with subscription ``keep`` (sine, 100 samples/s);
    checks every data message of ``keep`` follows the previous one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connections = 0
        self.open()

    def open(self) -> None:
        # max_queue=None: the background thread always reads, so pings are answered even while
        # the test does not read (the test server pings every 0.5 s)
        # (a long-lived connection: entered as a context manager by hand, closed by ``ws.close()``)
        self.ws = connect(self.url, max_size=None, max_queue=None, open_timeout=5, close_timeout=1).__enter__()
        self.connections += 1
        self.next_seq = None
        self.samples = 0
        self.extra: set[str] = set()
        self.send(json.dumps({"type": "subscribe", "id": "keep", "generator": "sine", "seed": 1,
                              "params": {"interval": 0.01}}))
        assert self.reply()["type"] == "subscribed"

    def send(self, message: str | bytes, text: bool | None = None) -> None:
        self.ws.send(message, text=text)

    def recv(self, timeout: float = 5.0) -> dict:
        raw = self.ws.recv(timeout)
        if isinstance(raw, bytes):                  # a fuzzed binary subscription's data
            return {"type": "data", "id": decode_binary(raw).id}
        msg = json.loads(raw)
        if msg["type"] == "data" and msg["id"] == "keep":
            assert self.next_seq is None or msg["seq"] == self.next_seq, (msg["seq"], self.next_seq)
            assert "skipped" not in msg
            self.next_seq = msg["seq"] + len(msg["values"])
            self.samples += len(msg["values"])
        return msg

    def reply(self, timeout: float = 5.0) -> dict:
        """The next message that is not data."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg["type"] != "data":
                return msg

    def keep_flowing(self, n: int = 2) -> None:
        """``keep`` delivers ``n`` more samples (gap-free, checked in recv)."""
        target = self.samples + n
        deadline = time.monotonic() + 3
        while self.samples < target:
            assert time.monotonic() < deadline, "keep stopped"
            self.recv(3)

    def cleanup(self) -> None:
        """Unsubscribe what the fuzz subscribed (valid messages happen)."""
        for id in sorted(self.extra):
            self.send(json.dumps({"type": "unsubscribe", "id": id}))
            assert self.reply()["type"] == "unsubscribed"
        self.extra.clear()


@pytest.fixture(scope="module")
def keeper(srv):
    k = Keeper(srv.url)
    yield k
    k.ws.close()


# -- message strategies -------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.sampled_from([10**400, -10**30, 2**64, 2**53 + 1, 1e308, 5e-324, -0.0, "max", "", "\x00", "keep2"]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
ids = st.text(min_size=0, max_size=140).filter(lambda s: s != "keep") | st.sampled_from(["a", "b", "x" * 129, "\U0001f600"])
generators = st.sampled_from(list(GENERATORS)) | st.text(max_size=70)
param_names = st.sampled_from(sorted({f for spec in GENERATORS.values() for f in spec.params_model.model_fields}))
params = st.dictionaries(param_names | st.text(max_size=10), json_values, max_size=4)


@st.composite
def valid_ish(draw) -> dict:
    """A well-formed message of every type (before mutation)."""
    kind = draw(st.sampled_from(P.CLIENT_TYPES))
    msg: dict = {"type": kind}
    if kind == "subscribe":
        msg.update(id=draw(ids), generator=draw(generators), params=draw(params))
        for key, values in [("seed", st.integers(-5, 2**65)), ("start_seq", st.integers(-5, 2**54)),
                            ("speed", st.floats(allow_nan=True) | st.sampled_from(["max", 0, 1e6, 1e7])),
                            ("backpressure", st.sampled_from(["block", "drop", "nope"])),
                            ("encoding", st.sampled_from(["json", "binary", "xml"]))]:
            if draw(st.booleans()):
                msg[key] = draw(values)
    elif kind == "update":
        msg.update(id=draw(ids), params=draw(params))
        if draw(st.booleans()):
            msg["speed"] = draw(st.floats(allow_nan=True) | st.just("max"))
    elif kind != "list":
        msg["id"] = draw(ids)
    return msg


@st.composite
def mutated(draw) -> dict:
    msg = draw(valid_ish())
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "delete", "add"]))
        keys = list(msg)
        if op == "set" and keys:
            msg[draw(st.sampled_from(keys))] = draw(json_values)
        elif op == "delete" and keys:
            del msg[draw(st.sampled_from(keys))]
        else:
            msg[draw(st.text(max_size=12))] = draw(json_values)
    return msg


def _deep(n: int) -> str:
    return "[" * n + "]" * n


SPECIALS = [
    _deep(10_000),
    '{"type": "subscribe", "generator": "sine", "params": {"amplitude": %s}}' % _deep(10_000),
    '{"type": "subscribe", "id": %s"a"%s, "generator": "sine"}' % ("[" * 5000, "]" * 5000),
    '{"a":' * 5000 + "1" + "}" * 5000,
    '{"type": "list", "type": "list"}',
    '{"type": "pause", "id": "a", "id": "b"}',
    '{"type": "subscribe", "type": "list"}',
    '{"type": "subscribe", "generator": "sine", "seed": 1e400}',
    '{"type": "subscribe", "generator": "sine", "seed": %d}' % 10**400,
    '{"type": "subscribe", "generator": "sine", "start_seq": %d}' % (2**53 + 1),
    '{"type": "subscribe", "generator": "sine", "params": {"amplitude": NaN}}',
    '{"type": "subscribe", "generator": "sine", "params": {"frequency": Infinity}}',
    '{"type": "subscribe", "generator": "sine", "speed": NaN}',
    '{"type": "subscribe", "generator": "sine", "speed": -Infinity}',
    '{"type": "subscribe", "generator": "sine", "params": {"interval": 1e-320}}',
    '{"type": "subscribe", "generator": "normal", "params": {"std_dev": 1e308, "mean": -1e308}}',
    '{"type": "subscribe", "id": "\\ud800", "generator": "sine"}',
    '{"type": "subscribe", "id": "\u202e\u0000\U0001f600", "generator": "sine", "params": {"interval": 1}}',
    '\ufeff{"type": "list"}',
    '{"type": "subscribe", "id": "%s", "generator": "sine"}' % ("x" * 60_000),
    '{"type": "subscribe", "generator": "%s"}' % ("y" * 60_000),
    '{"type": "%s"}' % ("z" * 60_000),
    '{"type": "subscribe", "generator": "sine", "params": {"%s": 1}}' % ("p" * 60_000),
    '{"type": "subscribe"}', '{"id": "a"}', "{}", "[]", "null", '""', "1", "true", "", " ", "{", '{"type": null}',
    '{"type": ["list"]}', '{"type": {"type": "list"}}', '{"type": "list", "extra": 1}',
    '{"type": "update", "id": "ghost", "speed": 0}',
    '{"type": "subscribe", "generator": "sine", "params": {"interval": -1}}',
    '{"type": "subscribe", "generator": "random-square", "params": {"minimum_interval": 9, "maximum_interval": 3}}',
]

messages = st.one_of(
    mutated().map(lambda m: json.dumps(m, ensure_ascii=False, allow_nan=True)),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.integers(0, len(SPECIALS) - 1).map(lambda i: SPECIALS[i]),   # (by index: short reprs)
    st.text(max_size=200),
    st.binary(max_size=300),                                    # binary frames of garbage
    mutated().map(lambda m: json.dumps(m).encode()),            # JSON in a binary frame
)


def expected_reply(message: str | bytes) -> tuple[str | None, set[str]]:
    """The error code the protocol gives ``message`` (None when it parses)
    and the reply types it may get."""
    try:
        parsed = P.parse_client_message(message)
    except P.ProtocolError as exc:
        return exc.code, {"error"}
    if getattr(parsed, "id", None) == "keep" and parsed.type != "subscribe":
        return None, set()          # would pause/stop/retune the subscription under watch: not sent
    ok, _ = DOCUMENTED_REPLIES[parsed.type]
    return None, {ok, "error"}


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(batch=st.lists(messages, min_size=1, max_size=4))
def test_fuzzed_messages_get_an_error_or_their_reply_and_the_other_subscription_goes_on(srv, keeper, batch):
    for message in batch:
        assert len(message.encode() if isinstance(message, str) else message) <= MAX_MESSAGE
        code, allowed = expected_reply(message)
        if not allowed:
            continue
        keeper.send(message)
        reply = keeper.reply()
        assert reply["type"] in allowed, (message[:300], reply)
        if reply["type"] == "error":
            assert reply["code"] in P.ERROR_CODES and isinstance(reply["message"], str) and reply["message"]
            assert reply["id"] is None or (isinstance(reply["id"], str) and len(reply["id"]) <= 128)
            if code is not None:
                assert reply["code"] == code, (message[:300], reply)
        if code is None:    # it parses: exactly the documented reply, never internal_error
            check_documented_reply(P.parse_client_message(message), reply, {"keep"} | keeper.extra)
        if reply["type"] == "subscribed":
            keeper.extra.add(reply["id"])
        elif reply["type"] == "unsubscribed":
            keeper.extra.discard(reply["id"])
    keeper.keep_flowing(2)
    keeper.cleanup()
    assert keeper.connections == 1                    # no message closed the connection
    # new connections are still accepted and served
    with connect(srv.url, open_timeout=5) as other:
        other.send('{"type": "pause", "id": "nobody"}')
        assert json.loads(other.recv(5))["code"] == P.UNKNOWN_ID


def test_fuzz_left_the_server_clean(srv, keeper):
    """Runs after the fuzz: only the keeper's connection is open, and its
    subscription still delivers, gap-free, from where it was."""
    assert keeper.samples > 0
    keeper.keep_flowing(20)
    assert wait_until(lambda: srv.gate.open == 1), srv.gate.open


# -- extreme but valid parameters -----------------------------------------------------

def test_pacer_survives_paces_below_the_clock_resolution():
    """The pacer behind both paths: a pace whose quotient overflows made
    floor(inf) raise (the pump died, 1011), and a pace far below the
    resolution of the monotonic clock was settled one sample at a time
    (1e-18 s: 0.16 s per wake-up, the event loop blocked). Validation now
    keeps intervals >= 1 us, speed <= 1e6; the pacer holds regardless."""
    for interval, speed in [(5e-324, 1.0), (1e-12, 1e6), (1e-15, 1e6), (1e-9, 1e6), (1e-6, 1e6)]:
        p = Pacer.start(interval, speed, 7, now=12345.678, wall=0.0)
        started = time.thread_time()          # CPU time: the same on a loaded machine
        counts = [p.due_count(7, 12345.678 + dt) for dt in (-1.0, 0.0, 1e-9, 0.005, 3600.0)]
        assert time.thread_time() - started < 0.01, (interval, speed)
        assert counts[0] == 0 and counts[1] >= 1 and counts == sorted(counts), counts
    # and it still agrees exactly with its definition: sample n is due iff due_time(n) <= now
    rng = np.random.default_rng(7)
    for _ in range(3000):
        interval, speed = float(rng.choice([1e-3, 1 / 3, 1e-6, 7e-3])), float(rng.choice([1.0, 60.0, 1e3]))
        p = Pacer(interval, speed, int(rng.integers(0, 100)), float(rng.choice([0.0, 12345.678, 1e6 + 0.1])), 0.0)
        now = p.due0 + float(rng.uniform(-0.01, 0.05))
        n = p.due_count(p.seq0, now)
        assert (n == 0 or p.due_time(p.seq0 + n - 1) <= now) and p.due_time(p.seq0 + n) > now


def test_vanishing_paces_neither_kill_the_connection_nor_stall_the_server(srv, bystander):
    """Speed divides the smallest interval into paces below a microsecond of a
    microsecond: each such stream delivers as fast as it is read, and the
    paced stream on another connection keeps its schedule."""
    bystander.keep_flowing(2)
    while True:                                               # drain what queued up unread
        try:
            bystander.recv(0)
        except TimeoutError:
            break
    late: list[float] = []
    samples = [0]
    stop = threading.Event()

    def watch():                                              # the paced stream, read meanwhile
        while not stop.is_set():
            m = bystander.recv(2)
            if m["type"] == "data" and m["id"] == "keep":
                late.append(time.time() - m["t"] - (len(m["values"]) - 1) * 0.01)
                samples[0] += len(m["values"])

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    with connect(srv.url, open_timeout=5, max_size=None, max_queue=None) as ws:
        # a subnormal interval is refused outright (intervals are 0 or >= 1 us) ...
        ws.send(json.dumps({"type": "subscribe", "id": "sub", "generator": "uniform",
                            "params": {"interval": 5e-324}}))
        refused = json.loads(ws.recv(3))
        assert refused["type"] == "error" and refused["code"] == "invalid_params", refused
        assert refused["details"][0]["field"] == "interval"
        # ... but speed still divides the smallest interval into vanishing paces
        for id, interval, speed in [("sub", 1e-6, 1e6), ("pico", 1e-6, 1e6), ("femto", 2e-6, 5e5)]:
            ws.send(json.dumps({"type": "subscribe", "id": id, "generator": "uniform",
                                "params": {"interval": interval}, "speed": speed}))
        next_seq: dict[str, int] = {}
        acks = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline or len(next_seq) < 3:
            assert time.monotonic() < deadline + 3, next_seq
            m = json.loads(ws.recv(3))
            if m["type"] == "subscribed":
                acks += 1
                continue
            assert m["type"] == "data", m
            assert m["seq"] == next_seq.get(m["id"], 0)
            assert all(isinstance(v, float) and 0 <= v <= 1 for v in m["values"])
            next_seq[m["id"]] = m["seq"] + len(m["values"])
        assert acks == 3 and min(next_seq.values()) > 8192      # each delivers as fast as read
        ws.send(json.dumps({"type": "list"}))                     # and the connection still talks
        while (m := json.loads(ws.recv(5)))["type"] == "data":
            pass
        assert m["type"] == "generators"
    stop.set()
    watcher.join(5)
    elapsed = time.monotonic() - started
    # meanwhile the paced stream elsewhere kept its schedule: all its samples, none late
    assert samples[0] >= (elapsed - LOADED_LATENESS_S) / 0.01 and max(late) < LOADED_LATENESS_S, \
        (samples[0], elapsed, max(late))
    bystander.keep_flowing(5)


# -- proper closes for text frames that are not UTF-8, and for oversized messages -------

@pytest.mark.parametrize("payload", [b"\xff\xfe", b'{"type": "list", "x": "\xc3\x28"}', b"\xed\xa0\x80"])
def test_invalid_utf8_text_closes_with_1007(srv, payload):
    with connect(srv.url, open_timeout=5) as ws:
        ws.send(payload, text=True)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1007


def test_message_over_the_limit_closes_with_1009_and_others_go_on(srv):
    other = Keeper(srv.url)
    with connect(srv.url, open_timeout=5, max_size=None) as ws:
        ws.send("x" * (MAX_MESSAGE + 1))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    other.keep_flowing(10)
    other.ws.close()


# -- raw frames ----------------------------------------------------------------------

HANDSHAKE = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def raw_client(port: int, handshake: bool = True) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if handshake:
        sock.sendall(HANDSHAKE.format(port=port).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        assert head.endswith(b"\r\n\r\n"), "the server spoke first"
    return sock


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0, mask: bool = True,
          length: int | None = None) -> bytes:
    """One client frame; ``length`` announces another length than the payload's."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 1 << 16:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def read_close(sock: socket.socket, timeout: float = 10.0) -> tuple[int | None, float]:
    """Read server frames until its close frame; then expect the TCP
    connection to end. Returns (close code or None, seconds waited)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    buf = b""

    def need(n: int) -> bytes:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    try:
        while True:
            b0, b1 = need(2)
            assert not b1 & 0x80, "server frames are not masked"
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", need(8))[0]
            payload = need(n)
            if b0 & 0x0F == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                waited = time.monotonic() - started
                # after its close frame the server closes the TCP connection
                while True:
                    r, _, _ = select.select([sock], [], [], timeout)
                    assert r, "TCP connection left open after the close frame"
                    try:
                        if not sock.recv(65536):
                            break
                    except ConnectionResetError:
                        break
                return code, waited
    except EOFError:
        return None, time.monotonic() - started


MALFORMED = {
    "garbage bytes": (b"GARBAGE\r\n\x00\xff" * 8, 1002),
    "all reserved bits": (frame(0x1, b'{"type":"list"}', rsv=0b111), 1002),
    "rsv1 without compression": (frame(0x1, b'{"type":"list"}', rsv=0b100), 1002),
    "unmasked client frame": (frame(0x1, b'{"type":"list"}', mask=False), 1002),
    "reserved opcode 3": (frame(0x3, b"abc"), 1002),
    "reserved control opcode 0xB": (frame(0xB, b""), 1002),
    "fragmented ping": (frame(0x9, b"x", fin=False), 1002),
    "control frame over 125 bytes": (frame(0x9, b"p" * 126), 1002),
    "continuation without a start": (frame(0x0, b"tail"), 1002),
    "new message inside a fragmented one": (frame(0x1, b'{"ty', fin=False) + frame(0x1, b'pe"}'), 1002),
    "close code 999": (frame(0x8, struct.pack("!H", 999)), 1002),
    "close code 1005 on the wire": (frame(0x8, struct.pack("!H", 1005)), 1002),
    "close with a 1-byte payload": (frame(0x8, b"\x03"), 1002),
    "text not UTF-8": (frame(0x1, b"\xc3\x28"), 1007),
    "fragmented text not UTF-8": (frame(0x1, b"ok \xe2\x82", fin=False) + frame(0x0, b"\x28"), 1007),
}


@pytest.fixture
def bystander(srv):
    k = Keeper(srv.url)
    yield k
    k.ws.close()


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_frames_close_with_protocol_error_and_others_go_on(srv, bystander, name):
    data, expected = MALFORMED[name]
    bystander.keep_flowing(2)
    base = srv.gate.open
    sock = raw_client(srv.port)
    try:
        # a valid message first: the connection works until the bad frame
        sock.sendall(frame(0x1, b'{"type": "pause", "id": "x"}'))
        sock.sendall(data)
        code, _ = read_close(sock)
        assert code == expected, (name, code)
    finally:
        sock.close()
    bystander.keep_flowing(5)
    assert wait_until(lambda: srv.gate.open == base)


def test_a_1gb_frame_header_is_refused_with_1009_without_sending_the_body(srv, bystander):
    base = srv.gate.open
    sock = raw_client(srv.port)
    try:
        sock.sendall(frame(0x2, b"", length=1 << 30)[:14])   # header + mask key; not one byte of the body
        code, waited = read_close(sock)
        assert code == 1009 and waited < 5.0, (code, waited)     # the body never comes: no waiting for it
    finally:
        sock.close()
    # a message announced in parts: the fragments add up past the limit
    sock = raw_client(srv.port)
    try:
        sock.sendall(frame(0x1, b"a" * 40_000, fin=False))
        sock.sendall(frame(0x0, b"", fin=False, length=40_000)[:8])   # announced, not sent
        code, waited = read_close(sock)
        assert code == 1009 and waited < 5.0, (code, waited)     # the body never comes: no waiting for it
    finally:
        sock.close()
    bystander.keep_flowing(5)
    assert wait_until(lambda: srv.gate.open == base)


# -- half-open connections -------------------------------------------------------

def test_connections_that_never_finish_the_handshake_are_dropped_by_open_timeout(srv, bystander):
    before, base = srv.tasks(), srv.gate.open
    socks = [raw_client(srv.port, handshake=False) for _ in range(5)]        # connect, say nothing
    partial = raw_client(srv.port, handshake=False)
    partial.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")            # half a request, then silence
    slow = raw_client(srv.port, handshake=False)
    started = time.monotonic()
    assert srv.tasks() > before or wait_until(lambda: srv.tasks() > before, 0.3)
    for sock in [*socks, partial]:
        sock.settimeout(OPEN_TIMEOUT + 3)
        try:
            assert sock.recv(1024) == b""                                    # the server hung up
        except ConnectionResetError:
            pass
        sock.close()
    waited = time.monotonic() - started
    assert OPEN_TIMEOUT * 0.8 < waited < OPEN_TIMEOUT + 2, waited
    # trickling the handshake one byte at a time does not buy more time
    request = HANDSHAKE.format(port=srv.port).encode()
    closed_at = None
    for i in range(len(request)):
        try:
            slow.sendall(request[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic() - started
            break
        time.sleep(0.05)
    slow.close()
    assert closed_at is not None and closed_at < OPEN_TIMEOUT + 2, closed_at
    assert wait_until(lambda: srv.tasks() <= before), (srv.tasks(), before)
    assert srv.gate.open == base
    bystander.keep_flowing(5)


@pytest.mark.parametrize("subscribed", [False, True])
def test_a_client_that_goes_silent_is_dropped_by_keepalive(srv, bystander, subscribed):
    before, base = srv.tasks(), srv.gate.open
    sock = raw_client(srv.port)
    if subscribed:
        sock.sendall(frame(0x1, json.dumps({"type": "subscribe", "id": "s", "generator": "sine",
                                            "params": {"interval": 0.01}}).encode()))
    assert wait_until(lambda: srv.gate.open == base + 1)
    started = time.monotonic()
    # never answer a ping (nor read, when subscribed: data piles up unread)
    if subscribed:
        time.sleep(PING * 2 + 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # ping at PING, no pong by 2 * PING: close 1011, then close_timeout (2 s) for a reply that never comes
    assert wait_until(lambda: srv.gate.open == base, PING * 2 + 5), srv.gate.open
    waited = time.monotonic() - started
    if not subscribed:
        assert waited > PING * 0.8
        code, _ = read_close(sock)
        assert code == 1011                 # "keepalive ping timeout"
    sock.close()
    assert wait_until(lambda: srv.tasks() <= before), (srv.tasks(), before)
    bystander.keep_flowing(5)


def test_a_client_that_answers_pings_stays(srv):
    k = Keeper(srv.url)      # websockets answers pings for us
    time.sleep(PING * 4)
    k.keep_flowing(10)
    assert k.connections == 1
    k.ws.close()
