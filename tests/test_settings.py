"""``Settings`` is the one source of ``wsgen serve``'s flags, env vars and
defaults: the generated parser, its ``--help``, and a real server told
through the environment."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from wsgen.cli import build_parser
from wsgen.server.config import Settings, parse_port, parse_seconds, settings_from_args, settings_options

from servers import ServeProcess  # noqa: E402  (tests/ is on sys.path under pytest)

OPTIONS = settings_options()

# every flag and env var wsgen serve had before Settings declared them (README, docs/protocol.md, k8s manifests)
KNOWN = {
    "host": ("--host", "WSGEN_HOST"), "port": ("--port", "WSGEN_PORT"),
    "http_port": ("--http-port", "WSGEN_HTTP_PORT"), "log_level": ("--log-level", "WSGEN_LOG_LEVEL"),
    "workers": ("--workers", "WSGEN_WORKERS"),
    "max_connections": ("--max-connections", "WSGEN_MAX_CONNECTIONS"),
    "max_connections_per_ip": ("--max-connections-per-ip", "WSGEN_MAX_CONNECTIONS_PER_IP"),
    "max_http_connections": ("--max-http-connections", "WSGEN_MAX_HTTP_CONNECTIONS"),
    "max_subscriptions": ("--max-subscriptions", "WSGEN_MAX_SUBSCRIPTIONS"),
    "min_interval_s": ("--min-interval", "WSGEN_MIN_INTERVAL"),
    "max_message_bytes": ("--max-message-bytes", "WSGEN_MAX_MESSAGE_BYTES"),
    "tick_s": ("--tick", "WSGEN_TICK"), "align_s": ("--align", "WSGEN_ALIGN"),
    "graceful_timeout_s": ("--graceful-timeout", "WSGEN_GRACEFUL_TIMEOUT"),
    "drain_delay_s": ("--drain-delay", "WSGEN_DRAIN_DELAY"),
    "ping_interval_s": ("--ping-interval", "WSGEN_PING_INTERVAL"),
    "ping_timeout_s": ("--ping-timeout", "WSGEN_PING_TIMEOUT"),
    "write_timeout_s": ("--write-timeout", "WSGEN_WRITE_TIMEOUT"),
    "http_header_timeout_s": ("--http-header-timeout", "WSGEN_HTTP_HEADER_TIMEOUT"),
    "token": ("--token", "WSGEN_TOKEN"), "allow_origins": ("--allow-origin", "WSGEN_ALLOW_ORIGINS"),
    "allow_hosts": ("--allow-host", "WSGEN_ALLOW_HOSTS"), "scenario": ("--scenario", "WSGEN_SCENARIO"),
    "admin_token": ("--admin-token", "WSGEN_ADMIN_TOKEN"), "redis_url": ("--redis-url", "WSGEN_REDIS_URL"),
    "update_margin_s": ("--update-margin", "WSGEN_UPDATE_MARGIN"), "data_dir": ("--data-dir", "WSGEN_DATA_DIR"),
    "max_upload_bytes": ("--max-upload-bytes", "WSGEN_MAX_UPLOAD_BYTES"),
}


@pytest.fixture
def clean_env(monkeypatch):
    """No WSGEN_* setting in the environment (the defaults are Settings')."""
    for _, opt in OPTIONS:
        monkeypatch.delenv(opt.env, raising=False)
    return monkeypatch


def other_text(f, opt) -> tuple[str, object]:
    """A valid text for the option other than its default, and its value."""
    if opt.repeat:
        return "a.example,b.example", ["a.example", "b.example"]
    if opt.choices:
        return opt.choices[-1], opt.choices[-1]
    if opt.parse is parse_seconds:
        return "7.25", 7.25
    if opt.parse in (parse_port, int):
        return "4321", 4321
    return "something-else", "something-else"


def test_the_flags_and_env_vars_are_the_ones_wsgen_serve_always_had():
    assert {f.name: (opt.flag, opt.env) for f, opt in OPTIONS} == KNOWN
    for f, opt in OPTIONS:       # the naming rule of the module docstring
        assert opt.env == "WSGEN_" + f.name.removesuffix("_s").upper()
    unset = {f.name for f in dataclasses.fields(Settings)} - set(KNOWN)
    assert unset == {"max_block", "send_buffer_bytes", "reuse_port", "open_timeout_s", "named"}


def test_every_option_is_in_serve_help_with_its_env_var(clean_env):
    env = {**os.environ, "COLUMNS": "1000"}
    out = subprocess.run([sys.executable, "-m", "wsgen.cli", "serve", "--help"], capture_output=True, text=True,
                         env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    # one block per option: from its line "  --flag ..." to the next option's line
    blocks = {}
    for block in re.split(r"\n(?=  -)", out.stdout):
        head = block.strip().split()[0].rstrip(",")
        blocks[head] = " ".join(block.split())
    for f, opt in OPTIONS:
        assert opt.flag in blocks, f"{opt.flag} missing from wsgen serve --help"
        assert f"env {opt.env}" in blocks[opt.flag], blocks[opt.flag]
        assert opt.help.split(";")[0].split("(")[0].strip() in blocks[opt.flag]
    assert "named streams:" in out.stdout and "recorded series:" in out.stdout
    # the defaults an operator needs to size a shutdown budget (deploy/kubernetes/deployment.yaml)
    assert "(default 5; env WSGEN_GRACEFUL_TIMEOUT)" in blocks["--graceful-timeout"]
    assert "(default 0; env WSGEN_DRAIN_DELAY)" in blocks["--drain-delay"]
    assert "(default 1000; env WSGEN_MAX_CONNECTIONS_PER_IP)" in blocks["--max-connections-per-ip"]
    assert "(default: none, open for local use) (env WSGEN_TOKEN)" in blocks["--token"]      # said once only
    assert "/healthz, /readyz, the page" in blocks["--token"]
    assert set(blocks) == {"-h"} | {opt.flag for _, opt in OPTIONS} | {"usage:"}


def test_parsed_defaults_equal_settings_defaults(clean_env):
    args = build_parser().parse_args(["serve"])
    for f, opt in OPTIONS:
        assert getattr(args, opt.dest) == getattr(Settings(), f.name), opt.flag
    assert settings_from_args(args) == Settings()
    assert (args.port, args.http_port, args.workers, args.max_upload_bytes) == (8765, 8000, "1", 16 << 20)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_env_var_sets_the_field_and_the_flag_wins(clean_env, name):
    f, opt = next((f, opt) for f, opt in OPTIONS if f.name == name)
    text, value = other_text(f, opt)
    assert value != getattr(Settings(), name)
    clean_env.setenv(opt.env, text)
    assert getattr(settings_from_args(build_parser().parse_args(["serve"])), name) == value
    flag_text, flag_value = ("z.example", ["a.example", "b.example", "z.example"]) if opt.repeat else (
        ("debug", "debug") if opt.choices else ("0", 0) if opt.parse else ("given", "given"))
    settings = settings_from_args(build_parser().parse_args(["serve", opt.flag, flag_text]))
    assert getattr(settings, name) == flag_value        # a repeated flag adds to the env's list


@pytest.mark.parametrize("env, text, message", [
    ("WSGEN_PORT", "70000", "argument --port: 70000: a port is in [0, 65535] (0 picks a free one)"),
    ("WSGEN_HTTP_PORT", "eighty", "argument --http-port: 'eighty' is not a port number"),
    ("WSGEN_TICK", "nan", "argument --tick: 'nan': must be a number of seconds in [0, 86400]"),
    ("WSGEN_WRITE_TIMEOUT", "soon", "argument --write-timeout: 'soon' is not a number of seconds"),
    ("WSGEN_LOG_LEVEL", "loud",
     "argument --log-level: invalid choice: 'loud' (choose from debug, info, warning, error)"),
    ("WSGEN_MAX_SUBSCRIPTIONS", "many", "argument --max-subscriptions: invalid int value: 'many'"),
])
def test_a_bad_env_value_is_refused_like_the_flag(clean_env, capsys, env, text, message):
    clean_env.setenv(env, text)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve"])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    clean_env.delenv(env)
    flag = next(opt.flag for _, opt in OPTIONS if opt.env == env)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", flag, text])
    assert message in capsys.readouterr().err


def test_an_empty_token_means_none(clean_env):
    clean_env.setenv("WSGEN_ADMIN_TOKEN", "")
    settings = settings_from_args(build_parser().parse_args(["serve", "--token", "", "--redis-url", ""]))
    assert (settings.token, settings.admin_token, settings.redis_url) == (None, None, None)


async def subscribe_three(url: str) -> list[str]:
    """Reply types (``subscribed`` or the error code) to three subscriptions on one connection."""
    replies = []
    async with connect(url) as ws:
        for i in range(3):
            await ws.send(json.dumps({"type": "subscribe", "id": f"s{i}", "generator": "sine",
                                      "params": {"interval": 1.0}}))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if reply.get("id") == f"s{i}" and reply["type"] in ("subscribed", "error"):
                    replies.append(reply.get("code", reply["type"]))
                    break
    return replies


def test_a_real_server_takes_its_limit_from_the_environment_and_the_flag_over_it():
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSGEN_")}
    env["WSGEN_MAX_SUBSCRIPTIONS"] = "1"
    server = ServeProcess(http=False, env=env)
    try:
        assert asyncio.run(subscribe_three(server.url)) == ["subscribed", "limit_reached", "limit_reached"]
    finally:
        assert server.stop() == 0
    server = ServeProcess("--max-subscriptions", "2", http=False, env=env)
    try:
        assert asyncio.run(subscribe_three(server.url)) == ["subscribed", "subscribed", "limit_reached"]
    finally:
        assert server.stop() == 0
