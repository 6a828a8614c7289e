// wsgen live page: pick a generator, start streams over the WebSocket
// protocol (docs/protocol.md), turn their knobs while they run, and watch
// them on one uPlot chart. Plain ES2020, no framework, no build step.
//
// Served by the wsgen HTTP server: GET / (this page), /static/web/* (these
// files), /config.json (WebSocket port, token needed?), /generators (the
// catalogue). The WebSocket URL is derived from `location`, never a fixed
// host: ws: or wss: to match http: or https:, the page's own host and port
// with path ws (the HTTP port's WebSocket endpoint), or with `?ws=port` the
// dedicated port from /config.json. A `?token=` in the page URL is passed on.
"use strict";

(() => {
  // -- settings ----------------------------------------------------------------
  const UPDATE_DEBOUNCE_MS = 100;       // knobs send `update` at most this often
  const RENDER_EVERY_MS = 50;           // chart redraws at most 20 times a second
  const BACKOFF_MIN_MS = 500;           // reconnect delays: 0.5 s, 1 s, 2 s ... 10 s
  const BACKOFF_MAX_MS = 10000;
  const MAX_ERRORS_SHOWN = 6;
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                  "#7f7f7f", "#393b79"];
  const ANOMALY_COLOR = "#e41a1c";
  const ANOMALY_EDGE = "#111";          // dark ring: the dots stand out on any line colour (orange included)
  const BAND_FILL = "rgba(228, 26, 28, 0.13)";   // anomaly windows, shaded behind the lines

  const pageUrl = new URL(location.href);
  const token = pageUrl.searchParams.get("token") || null;
  const adminToken = pageUrl.searchParams.get("admin_token") || null;   // operator panel (named streams)
  const $ = (id) => document.getElementById(id);

  // -- state -----------------------------------------------------------------
  const app = {
    config: null,              // /config.json
    catalogue: new Map(),      // generator name -> {name, family, anomalous, description, interval_field, params_schema}
    ws: null,
    wsUrl: null,
    state: "connecting",       // connecting | open | closed
    retries: 0,
    reconnectTimer: null,
    reconnectAt: 0,
    streams: new Map(),        // subscription id -> Stream (insertion order = legend order)
    selected: null,            // id of the stream the form is bound to; null: the form is for a new stream
    nextNumber: 1,
    lastUpdatedSeq: null,
    windowSize: 500,
    xMode: "time",             // time | seq
    errors: [],                // every error shown, newest last (test hook)
    sent: {},                  // messages sent, by type (test hook)
    plot: null,
    plotKey: "",
    renderTimer: null,
    chartStreams: [],          // streams in the chart, in series order
    preset: "demo",            // a new stream's form starts from: "demo" (the catalogue's lively values) | "defaults"
    handlers: {},              // other modules' server messages, by type (watch.js: watching, detections, score ...)
    drawHooks: [],             // other modules' chart layers, called with the uPlot after each draw
    openHooks: [],             // called when the WebSocket (re)opens
  };

  /** One subscription: its settings, what the server confirmed, and a rolling window of samples. */
  class Stream {
    constructor(id, generator, params, seed, color) {
      this.id = id;
      this.generator = generator;
      this.params = params;          // the server's (from subscribed / updated); before that, what was sent
      this.seedWanted = seed;        // text, "" = let the server draw one
      this.seed = null;              // text: the seed in use (exact, also beyond 2**53)
      this.color = color;
      this.status = "subscribing";   // subscribing | running | paused | stopping | disconnected
      this.resubscribing = false;    // subscribing again after a reconnect
      this.wasPaused = false;
      this.anomalous = Boolean(app.catalogue.get(generator)?.anomalous);
      this.seq = [];                 // rolling window: sample index,
      this.tx = [];                  //   stream time (made strictly increasing for the chart),
      this.v = [];                   //   value (null for NaN),
      this.label = [];               //   anomaly label,
      this.gapT = [];                //   a pause before it (line broken in time mode),
      this.gapS = [];                //   samples missing before it (broken in both modes)
      this.dt = null;                // seconds between samples, as last sent
      this.lastSeq = null;
      this.received = 0;
      this.skipped = 0;
      this.lag = 0;
      this.anomalies = 0;            // anomaly samples received in total
      this.markers = [];             // seqs where an update took effect (dashed lines)
      this.updatedSeq = null;
      this.pending = {};             // knob changes not yet sent
      this.debounce = null;
      this.drawn = 0;                // points in the last chart redraw
      this.anomaliesDrawn = 0;
      this.named = null;             // a named stream's name (shared; no form, no seed)
      this.spec = null;              // a composition's spec (its generator object), else null
    }
  }

  // -- small helpers -----------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function authHeaders() {
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async function fetchJSON(path) {
    const res = await fetch(path, { headers: authHeaders(), cache: "no-store" });
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try { message = JSON.parse(text).message || text; } catch { /* plain text */ }
      const err = new Error(`GET ${path}: ${res.status} ${message}`.trim());
      err.status = res.status;
      throw err;
    }
    return JSON.parse(text);
  }

  function fmt(x) {
    if (x === null || x === undefined) return "–";
    if (typeof x === "object") return JSON.stringify(x);
    if (typeof x !== "number") return String(x);
    return Math.abs(x) >= 1e6 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : String(+x.toFixed(6));
  }

  /** 1, 2 or 5 times a power of ten, >= x. */
  function niceCeil(x) {
    if (!(x > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(x));
    for (const m of [1, 2, 5, 10]) if (m * p >= x * (1 - 1e-12)) return m * p;
    return 10 * p;
  }

  /** Seeds are integers in [0, 2**64): kept as text so big ones stay exact. */
  function checkSeed(text) {
    if (text === "") return null;
    if (!/^\d{1,20}$/.test(text) || BigInt(text) >= 2n ** 64n) return "the seed must be an integer in [0, 2**64), or empty";
    return null;
  }

  // -- the WebSocket ------------------------------------------------------------
  function setState(state, detail = "") {
    app.state = state;
    $("status-dot").dataset.state = state;
    $("status").textContent = detail ? `${state} · ${detail}` : state;
    $("reconnect").hidden = state !== "closed";
    $("start").disabled = state !== "open" || app.catalogue.size === 0;
    document.body.dataset.connection = state;
  }

  // Which WebSocket endpoint: by default the page's own origin and port,
  // path ws beside the page (/ws, or /prefix/ws behind a proxy that serves
  // the page under /prefix/): it works wherever the page loaded. `?ws=port`
  // picks the dedicated WebSocket port from /config.json instead (faster,
  // when it is reachable).
  const wsChoice = pageUrl.searchParams.get("ws") === "port" ? "port" : "same";

  function wsUrlFor(config) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url;
    if (wsChoice === "port") {
      url = new URL(`${scheme}//${location.hostname}:${config.ws_port}/`);
    } else {
      url = new URL("ws", location.href);
      url.protocol = scheme;
      url.search = "";
      url.hash = "";
    }
    if (token) url.searchParams.set("token", token);
    return url.toString();
  }

  async function connect() {
    clearTimeout(app.reconnectTimer);
    app.reconnectTimer = null;
    setState("connecting");
    try {
      // Read the config again on every attempt: a restarted server may listen on another port.
      app.config = await fetchJSON("config.json");
      if (wsChoice === "port" && !app.config.ws_port) {
        throw new Error("the server did not say its WebSocket port (config.json: ws_port)");
      }
      if (app.config.token_required && !token) {
        const err = new Error("this server needs a token: open the page as …/?token=<token>");
        err.status = 401;   // the server's answer, in effect: shown in the error box
        throw err;
      }
      if (app.catalogue.size === 0) setCatalogue(await fetchJSON("generators"));
      await loadNamed();
    } catch (err) {
      // The server answered with an error (e.g. 401): worth a red box. Not
      // reachable at all: the status line says so while we retry.
      if (err.status) showError({ code: "http", message: err.message });
      scheduleReconnect(err.status ? `config.json: HTTP ${err.status}` : `server not reachable (${err.message})`);
      return;
    }
    app.wsUrl = wsUrlFor(app.config);
    const ws = new WebSocket(app.wsUrl);
    ws.binaryType = "arraybuffer";
    app.ws = ws;
    ws.onopen = () => {
      if (ws !== app.ws) return;
      app.retries = 0;
      setState("open");
      send({ type: "list" });
      resubscribeAll();
      for (const hook of app.openHooks) hook();
    };
    ws.onmessage = (ev) => {
      if (ws !== app.ws) return;
      try {
        if (typeof ev.data === "string") onText(ev.data);
        else onBinary(ev.data);
      } catch (err) {
        showError({ code: "client", message: `could not handle a server message: ${err.message}` });
      }
    };
    ws.onclose = (ev) => {
      if (ws !== app.ws) return;
      app.ws = null;
      for (const s of app.streams.values()) {
        if (s.status === "paused") s.wasPaused = true;
        if (s.status !== "stopping") s.status = "disconnected";
      }
      renderStreamList();
      let why = `code ${ev.code}${ev.reason ? ": " + ev.reason : ""}`;
      if (ev.code === 1001) why = "the server is going away";
      if (ev.code === 1006 && app.retries >= 2) why += " (check the server is up, the token, and that this page comes from the wsgen HTTP server: the WebSocket only accepts its own origin)";
      scheduleReconnect(why);
    };
  }

  function scheduleReconnect(why) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** app.retries);
    const delay = base * (0.8 + 0.4 * Math.random());
    app.retries += 1;
    app.reconnectAt = Date.now() + delay;
    clearTimeout(app.reconnectTimer);
    app.reconnectTimer = setTimeout(connect, delay);
    const tick = () => {
      if (app.state !== "closed" || !app.reconnectTimer) return;
      const left = Math.max(0, (app.reconnectAt - Date.now()) / 1000);
      setState("closed", `${why} · reconnecting in ${left.toFixed(1)} s`);
      if (left > 0) setTimeout(tick, 200);
    };
    app.state = "closed";
    tick();
  }

  function send(message) {
    if (!app.ws || app.ws.readyState !== WebSocket.OPEN) {
      showError({ code: "not_connected", id: message.id ?? null,
                  message: `not connected: could not send ${message.type}; it will not be retried` });
      return false;
    }
    // The seed goes out as a bare integer, spliced in as text so that seeds
    // beyond 2**53 (which a JS number cannot hold) stay exact.
    let text;
    if (typeof message.seed === "string") {
      const { seed, ...rest } = message;
      text = JSON.stringify({ ...rest, seed: "@SEED@" }).replace('"@SEED@"', seed);
    } else {
      text = JSON.stringify(message);
    }
    app.ws.send(text);
    app.sent[message.type] = (app.sent[message.type] ?? 0) + 1;
    return true;
  }

  function subscribeMessage(s, startSeq) {
    if (s.named) {
      const msg = { type: "subscribe", id: s.id, stream: s.named, encoding: "binary" };
      if (startSeq) msg.start_seq = startSeq;
      return msg;
    }
    const msg = s.spec
      ? { type: "subscribe", id: s.id, generator: s.spec, encoding: "json" }   // a composition: events need JSON
      : { type: "subscribe", id: s.id, generator: s.generator, params: s.params, encoding: "binary" };
    const seed = s.seed ?? s.seedWanted;
    if (seed !== "" && seed !== null) msg.seed = seed;
    if (startSeq) msg.start_seq = startSeq;
    return msg;
  }

  /** After a reconnect: the server forgot our subscriptions; take each up again where it stopped. */
  function resubscribeAll() {
    for (const s of app.streams.values()) {
      if (s.status === "stopping") { removeStream(s.id); continue; }
      s.status = "subscribing";
      s.resubscribing = true;
      send(subscribeMessage(s, s.lastSeq === null ? 0 : s.lastSeq + 1));
    }
    renderStreamList();
  }

  // -- server messages -----------------------------------------------------------
  function onText(raw) {
    const msg = JSON.parse(raw);
    const s = msg.id != null ? app.streams.get(msg.id) : undefined;
    switch (msg.type) {
      case "data":
        if (s && Array.isArray(msg.values[0])) addChannels(s, msg);   // a composition with channels
        else if (s) addSamples(s, msg.seq, msg.t, msg.dt, msg.values, msg.labels ?? null, msg.lag ?? 0, msg.skipped ?? 0);
        break;
      case "subscribed": {
        if (!s) break;
        const seed = /"seed":\s*(\d+)/.exec(raw);   // exact, also beyond 2**53
        s.seed = seed ? seed[1] : String(msg.seed);
        s.params = msg.params;
        s.status = "running";
        if (s.resubscribing && s.wasPaused) {
          send({ type: "pause", id: s.id });
        }
        s.resubscribing = false;
        renderStreamList();
        if (app.selected === s.id) renderFormMode();
        break;
      }
      case "updated":
        if (!s) {
          if (typeof msg.id === "string" && msg.id.startsWith("op-")) {
            $("op-status").textContent = `${msg.op} of ${msg.stream} applies from seq ${msg.seq}`;
            $("op-status").dataset.seq = String(msg.seq);
          }
          break;
        }
        if (s.quietUpdates > 0) { s.quietUpdates -= 1; break; }   // a speed change of watch.js: no marker
        onUpdated(s, msg);
        break;
      case "paused":
        if (s) { s.status = "paused"; s.wasPaused = true; renderStreamList(); }
        break;
      case "resumed":
        if (s) { s.status = "running"; s.wasPaused = false; renderStreamList(); }
        break;
      case "unsubscribed":
        if (s) removeStream(s.id);
        break;
      case "generators":
        if (msg.composition) app.composition = msg.composition;   // schema and presets (compose.js)
        setCatalogue(msg.generators);
        break;
      case "ended":
        if (s) removeStream(s.id);
        break;
      case "error":
        onServerError(msg, s);
        app.handlers.error?.(msg);
        break;
      default:
        // Another module's message (watch.js); a newer server may send more: ignore what we do not know.
        app.handlers[msg.type]?.(msg, raw);
        break;
    }
  }

  const utf8 = new TextDecoder();

  /** A binary data frame (wsgen/encoding.py): 40-byte header, id, float64 values, label bits. */
  function onBinary(buf) {
    const dv = new DataView(buf);
    const version = dv.getUint8(0);
    if (version !== 1) throw new Error(`binary frame version ${version} is not supported`);
    const flags = dv.getUint8(1);
    const idLen = dv.getUint16(2, true);
    const count = dv.getUint32(4, true);
    const seq = Number(dv.getBigUint64(8, true));
    const t = dv.getFloat64(16, true);
    const dt = dv.getFloat64(24, true);
    const lag = dv.getFloat32(32, true);
    const skipped = dv.getUint32(36, true);
    const id = utf8.decode(new Uint8Array(buf, 40, idLen));
    const pos = 40 + idLen;
    const values = new Float64Array(buf.slice(pos, pos + 8 * count));   // slice: aligned copy
    let labels = null;
    if (flags & 1) {
      const bits = new Uint8Array(buf, pos + 8 * count, Math.ceil(count / 8));
      labels = new Array(count);
      for (let i = 0; i < count; i++) labels[i] = ((bits[i >> 3] >> (i & 7)) & 1) === 1;
    }
    const s = app.streams.get(id);
    if (s) addSamples(s, seq, t, dt, values, labels, lag, skipped);
  }

  function addSamples(s, seq0, t0, dt, values, labels, lag, skipped) {
    const n = values.length;
    const keep = app.windowSize;
    const first = Math.max(0, n - keep);     // a huge message: only its tail fits the window
    let prevT = s.tx.length ? s.tx[s.tx.length - 1] : -Infinity;
    // Break the line where samples are missing (dropped) or where time
    // jumps (a pause): more than 3 sample intervals (0.25 s if unpaced).
    const slowest = Math.max(dt, s.dt ?? dt);
    const timeGap = s.tx.length > 0 && t0 + first * dt - prevT > 3 * slowest + (slowest === 0 ? 0.25 : 0);
    const seqGap = s.seq.length > 0 && seq0 + first !== s.lastSeq + 1;
    s.dt = dt;
    for (let i = first; i < n; i++) {
      // Unpaced samples of one message share a time (dt = 0): nudge them
      // apart by a microsecond so the chart keeps their order.
      let t = t0 + i * dt;
      if (!(t > prevT)) t = prevT + 1e-6;
      prevT = t;
      const v = values[i];
      s.seq.push(seq0 + i);
      s.tx.push(t);
      s.v.push(Number.isFinite(v) ? v : null);
      s.label.push(labels ? labels[i] : false);
      s.gapT.push(i === first && (timeGap || seqGap));
      s.gapS.push(i === first && seqGap);
    }
    if (labels) for (let i = 0; i < n; i++) if (labels[i]) s.anomalies += 1;
    const excess = s.seq.length - keep;
    if (excess > 0) for (const a of [s.seq, s.tx, s.v, s.label, s.gapT, s.gapS]) a.splice(0, excess);
    s.lastSeq = seq0 + n - 1;
    s.received += n;
    s.skipped += skipped;
    s.lag = lag;
    scheduleRender();
  }

  /** A composition with channels: `values` / `labels` hold one array per
   * channel (params.channels names them); each channel is a line of its own
   * (a child stream in s.channelStreams); s counts the samples. */
  function addChannels(s, msg) {
    const names = s.params?.channels ?? msg.values.map((_, c) => `ch${c}`);
    if (!s.channelStreams) {
      const first = COLORS.indexOf(s.color);
      s.channelStreams = names.map((name, c) => {
        const child = new Stream(`${s.id}.${name}`, name, {}, "", COLORS[(first + c) % COLORS.length]);
        child.anomalous = true;
        return child;
      });
    }
    s.channelStreams.forEach((child, c) =>
      addSamples(child, msg.seq, msg.t, msg.dt, msg.values[c], msg.labels?.[c] ?? null, msg.lag ?? 0, 0));
    const n = msg.values[0].length;
    s.lastSeq = msg.seq + n - 1;
    s.received += n;
    s.skipped += msg.skipped ?? 0;
    s.anomalies = s.channelStreams.reduce((a, child) => a + child.anomalies, 0);
  }

  function onUpdated(s, msg) {
    const changed = Object.keys(msg.params).filter((k) => msg.params[k] !== s.params[k]);
    s.params = msg.params;
    s.updatedSeq = msg.seq;
    s.markers.push(msg.seq);
    app.lastUpdatedSeq = msg.seq;
    const what = changed.map((k) => `${k}=${fmt(msg.params[k])}`).join(", ") || "no change";
    const status = $("update-status");
    status.textContent = `${s.id} updated at seq ${msg.seq} (${what})`;
    status.dataset.seq = String(msg.seq);
    status.dataset.id = s.id;
    scheduleRender();
  }

  function onServerError(msg, s) {
    // Point at the field when the error is about the form's values: those
    // of the stream the form is bound to (a new one is bound at Start).
    const aboutForm = msg.id != null && msg.id === app.selected;
    // A refused subscribe: the stream never started (or did not come back after a reconnect).
    if (s && s.status === "subscribing") removeStream(s.id);
    showError(msg);
    if (aboutForm) {
      for (const d of msg.details ?? []) {
        const field = String(d.field ?? "").replace(/^params\./, "");
        const name = field.split(".")[0];     // "values.2" (an item of a list) -> the values box
        if ($(`param-${name}`)) setFieldError(name, `${field === name ? "" : field + ": "}${d.message} (server)`);
      }
    }
  }

  function showError(err) {
    app.errors.push(err);
    const box = $("errors");
    // The same error again (a retry failing the same way): count it, do not stack it.
    const key = JSON.stringify([err.code, err.id, err.message, err.details]);
    const newest = box.firstElementChild;
    if (newest && newest.dataset.key === key) {
      newest.dataset.count = String(Number(newest.dataset.count) + 1);
      newest.querySelector("time").textContent = `${new Date().toLocaleTimeString()} (×${newest.dataset.count})`;
      return;
    }
    const details = (err.details ?? []).map((d) =>
      el("li", {}, el("code", { text: d.field }), ` ${d.message}`, d.value !== undefined ? ` (got ${JSON.stringify(d.value)})` : ""));
    const item = el("div", { class: "error", role: "alert", "data-key": key, "data-count": 1 },
      el("button", { type: "button", class: "close", title: "dismiss", text: "×", onclick: () => item.remove() }),
      el("strong", { text: err.code ?? "error" }),
      err.id ? el("span", { class: "error-id", text: ` [${err.id}]` }) : null,
      el("span", { class: "error-message", text: ` ${err.message ?? ""}` }),
      details.length ? el("ul", {}, ...details) : null,
      el("time", { text: new Date().toLocaleTimeString() }));
    box.prepend(item);
    while (box.children.length > MAX_ERRORS_SHOWN) box.lastElementChild.remove();
  }

  // -- the catalogue and the form ---------------------------------------------------
  function setCatalogue(list) {
    const before = [...app.catalogue.keys()].join();
    app.catalogue = new Map(list.map((g) => [g.name, g]));
    if ([...app.catalogue.keys()].join() === before) return;
    const select = $("generator");
    const current = select.value;
    select.replaceChildren();
    const families = new Map();
    for (const g of app.catalogue.values()) {
      if (!families.has(g.family)) families.set(g.family, el("optgroup", { label: g.family }));
      families.get(g.family).append(el("option", { value: g.name, text: g.name }));
    }
    select.append(...families.values());
    select.disabled = false;
    select.value = app.catalogue.has(current) ? current : select.options[0].value;
    buildForm(app.catalogue.get(select.value), null);
    $("start").disabled = app.state !== "open";
  }

  /** JSON Schema property -> what the form needs: kind, bounds, default. */
  function describe(name, prop) {
    const type = prop.type ?? (prop.anyOf ?? []).map((p) => p.type).find((t) => t && t !== "null");
    // arrays and objects (pattern values, steps, seasonal components) are edited as JSON text
    const kind = prop.enum ? "enum" : type === "integer" ? "integer" : type === "number" ? "number"
      : type === "boolean" ? "boolean" : type === "array" || type === "object" ? "json" : "string";
    const nullable = (prop.anyOf ?? []).some((p) => p.type === "null");
    return {
      name, kind, prop, nullable,
      title: prop.title ?? name,
      unit: prop.unit ?? null,
      description: prop.description ?? "",
      min: prop.minimum ?? prop.exclusiveMinimum ?? -Infinity,
      max: prop.maximum ?? prop.exclusiveMaximum ?? Infinity,
      exclusiveMin: prop.exclusiveMinimum !== undefined,
      exclusiveMax: prop.exclusiveMaximum !== undefined,
    };
  }

  /** A slider range that follows the field's meaning: an angle in degrees
   * spans a full turn either way; a field bounded closely by its schema
   * (a probability, a duty cycle) spans its bounds; anything else a nice
   * span around its value (else its default), not below zero where the
   * schema says so. The number box next to it takes any value the schema
   * allows, and the slider follows. */
  function sliderRange(f, value) {
    let lo, hi;
    const v = Number.isFinite(value) ? value : Number(f.prop.default ?? 0);
    if (f.unit === "deg") {
      [lo, hi] = [Math.max(f.min, -360), Math.min(f.max, 360)];
    } else if (Number.isFinite(f.min) && Number.isFinite(f.max) && f.max - f.min <= 1000) {
      [lo, hi] = [f.min, f.max];
    } else {
      const w = niceCeil(Math.max(f.kind === "integer" ? 10 : 1, 4 * Math.abs(v)));
      lo = f.min >= 0 ? f.min : Math.max(f.min, -w);
      hi = Math.min(f.max, f.min >= 0 ? Math.max(w, f.min + w) : w);
    }
    if (Number.isFinite(value)) {
      if (value > hi) hi = Math.min(f.max, niceCeil(value));
      if (value < lo) lo = Math.max(f.min, -niceCeil(-value));
    }
    const step = f.kind === "integer" ? 1 : niceCeil((hi - lo) / 1000);
    return { lo, hi, step };
  }

  function validate(f, raw) {
    if (f.kind === "boolean") return { value: Boolean(raw) };
    if (f.kind === "enum") return { value: f.prop.enum.find((e) => String(e) === raw) ?? raw };
    if (f.kind === "string") return { value: raw };
    const text = String(raw).trim();
    if (f.kind === "json") {
      // JSON, or the server's text form ("1,2,3"): the server validates either and names the field
      try { return { value: JSON.parse(text) }; } catch { return { value: text }; }
    }
    if (text === "" && f.nullable) return { value: null };
    if (text === "") return { error: "enter a number" };
    const x = Number(text);
    if (!Number.isFinite(x)) return { error: "not a number" };
    if (f.kind === "integer" && !Number.isInteger(x)) return { error: "must be a whole number" };
    if (f.exclusiveMin ? x <= f.min : x < f.min) return { error: `must be ${f.exclusiveMin ? ">" : "≥"} ${fmt(f.min)}` };
    if (f.exclusiveMax ? x >= f.max : x > f.max) return { error: `must be ${f.exclusiveMax ? "<" : "≤"} ${fmt(f.max)}` };
    const spec = app.catalogue.get($("generator").value);
    const floor = app.config?.min_interval_s ?? 0;
    if (spec && f.name === spec.interval_field && x > 0 && x < floor) {
      return { error: `0 (unpaced) or ≥ ${floor} s on this server` };
    }
    return { value: x };
  }

  /** Forget the "updated" line and the error boxes (another generator was picked). */
  function clearMessages() {
    const status = $("update-status");
    status.textContent = "";
    delete status.dataset.seq;
    delete status.dataset.id;
    $("errors").replaceChildren();
  }

  function setFieldError(name, message) {
    const box = $(`param-${name}-error`);
    if (!box) return;
    box.textContent = message || "";
    $(`param-${name}`).classList.toggle("invalid", Boolean(message));
  }

  let formFields = [];

  /** The parameter form of generator `spec`, filled with `values` (else the schema's defaults). */
  function buildForm(spec, values) {
    const form = $("params");
    form.replaceChildren();
    formFields = [];
    if (!spec) return;
    $("generator-description").textContent = spec.description.replace(/``/g, "") +
      (spec.anomalous ? " Labelled: anomaly samples are marked on the chart." : "");
    const props = spec.params_schema?.properties ?? {};
    if (!values && app.preset === "demo") values = spec.demo ?? {};
    renderPresetNote(spec, values);
    for (const [name, prop] of Object.entries(props)) {
      const f = describe(name, prop);
      const value = values && name in values ? values[name] : prop.default;
      formFields.push(f);
      const tip = [f.description, f.unit ? `[${f.unit}]` : "",
                   Number.isFinite(f.min) || Number.isFinite(f.max) ? `range ${f.exclusiveMin ? "(" : "["}${fmt(f.min)}, ${fmt(f.max)}${f.exclusiveMax ? ")" : "]"}` : "",
                   prop.default !== undefined ? `default ${fmt(prop.default)}` : ""].filter(Boolean).join(" · ");
      const label = el("label", { for: `param-${name}`, title: tip },
        f.title, f.unit ? el("span", { class: "unit", text: ` ${f.unit}` }) : null);
      let control, slider = null;
      if (f.kind === "number" || f.kind === "integer") {
        const r = sliderRange(f, Number(value));
        slider = el("input", { type: "range", id: `param-${name}-slider`, min: r.lo, max: r.hi, step: r.step,
                               value: value ?? 0, title: tip, "aria-label": `${f.title} slider` });
        control = el("input", { type: "number", id: `param-${name}`, name, value: value ?? "", title: tip,
                                step: f.kind === "integer" ? 1 : "any",
                                min: Number.isFinite(f.min) ? f.min : undefined,
                                max: Number.isFinite(f.max) ? f.max : undefined });
        slider.addEventListener("input", () => {
          let x = Number(slider.value);
          if (f.exclusiveMin && x <= f.min) x = f.min + Number(slider.step);
          control.value = String(x);
          onKnob(f, control.value);
        });
        control.addEventListener("input", () => onKnob(f, control.value, slider));
        control.addEventListener("change", () => onKnob(f, control.value, slider));
      } else if (f.kind === "boolean") {
        control = el("input", { type: "checkbox", id: `param-${name}`, name, title: tip, checked: Boolean(value) });
        control.addEventListener("change", () => onKnob(f, control.checked));
      } else if (f.kind === "enum") {
        control = el("select", { id: `param-${name}`, name, title: tip },
          ...prop.enum.map((e) => el("option", { value: String(e), text: String(e), selected: e === value })));
        control.addEventListener("change", () => onKnob(f, control.value));
      } else {
        const shown = f.kind === "json" && value != null ? JSON.stringify(value) : value ?? "";
        control = el("input", { type: "text", id: `param-${name}`, name, value: shown, title: tip });
        control.addEventListener("input", () => onKnob(f, control.value));
      }
      form.append(el("div", { class: `param kind-${f.kind}`, id: `field-${name}` },
        label, el("div", { class: "knob" }, slider, control),
        el("small", { class: "field-error", id: `param-${name}-error` })));
    }
    renderFormMode();
  }

  /** Say which values a new stream's form starts from, and offer the others. */
  function renderPresetNote(spec, values) {
    const note = $("preset-note");
    if (!note) return;
    note.replaceChildren();
    if (app.selected) return;            // a running stream's own values
    const demo = Object.entries(spec.demo ?? {});
    if (!demo.length) return;
    const toggle = el("button", { type: "button", id: "preset-toggle", class: "linkish" });
    if (app.preset === "demo") {
      note.append("Demo values (lively: ", el("code", { text: demo.map(([k, v]) => `${k}=${fmt(v)}`).join(" ") }),
        "). The HTTP endpoints keep the original service's defaults. ");
      toggle.textContent = "use the defaults";
    } else {
      note.append("The original service's defaults (one sample a second). ");
      toggle.textContent = "use the demo values";
    }
    toggle.addEventListener("click", () => {
      app.preset = app.preset === "demo" ? "defaults" : "demo";
      buildForm(spec, null);
    });
    note.append(toggle);
  }

  /** A knob moved: check it; if the form is bound to a running stream, send the change (debounced). */
  function onKnob(f, raw, slider = null) {
    const checked = validate(f, raw);
    setFieldError(f.name, checked.error);
    if (checked.error) return;
    if (slider) {
      // Keep the slider in step with the number, widening its range if needed.
      const r = sliderRange(f, checked.value);
      if (checked.value > Number(slider.max) || checked.value < Number(slider.min)) {
        slider.min = r.lo; slider.max = r.hi; slider.step = r.step;
      }
      slider.value = String(checked.value);
    }
    const s = app.streams.get(app.selected);
    if (!s || s.status === "stopping") return;
    s.pending[f.name] = checked.value;
    clearTimeout(s.debounce);
    s.debounce = setTimeout(() => flushUpdate(s), UPDATE_DEBOUNCE_MS);
    $("update-status").textContent = `sending ${f.name}=${fmt(checked.value)} to ${s.id}…`;
  }

  function flushUpdate(s) {
    s.debounce = null;
    const params = s.pending;
    s.pending = {};
    if (Object.keys(params).length && app.streams.has(s.id)) send({ type: "update", id: s.id, params });
  }

  function formValues() {
    const values = {};
    let ok = true;
    for (const f of formFields) {
      const node = $(`param-${f.name}`);
      const checked = validate(f, f.kind === "boolean" ? node.checked : node.value);
      setFieldError(f.name, checked.error);
      if (checked.error) ok = false;
      else values[f.name] = checked.value;
    }
    return ok ? values : null;
  }

  function renderFormMode() {
    const s = app.streams.get(app.selected);
    const mode = $("params-mode");
    mode.replaceChildren();
    if (s) {
      $("preset-note")?.replaceChildren();
      mode.append("Live: the knobs change ", el("strong", { style: `color:${s.color}`, text: s.id }),
        " as you move them. Seed in use: ", el("code", { id: "seed-used", text: s.seed ?? "…" }), ".");
      $("params-title").textContent = `Parameters of ${s.id}`;
      $("start").textContent = "Start another";
      $("new").hidden = false;
    } else {
      mode.textContent = "New stream: these values are used when you press Start.";
      $("params-title").textContent = "Parameters";
      $("start").textContent = "Start stream";
      $("new").hidden = true;
    }
    document.querySelectorAll("#streams li").forEach((li) => li.classList.toggle("selected", li.dataset.id === app.selected));
  }

  function select(id) {
    const s = app.streams.get(id);
    if (s?.named) return;            // a named stream has no form: operators use the operator panel
    if ((s ? id : null) !== app.selected) clearMessages();   // another stream: what was said about the last one goes
    app.selected = s ? id : null;
    if (s) {
      $("generator").value = s.generator;
      buildForm(app.catalogue.get(s.generator), s.params);
    }
    renderFormMode();
  }

  // -- actions -----------------------------------------------------------------
  function start() {
    const generator = $("generator").value;
    const spec = app.catalogue.get(generator);
    if (!spec) return;
    const params = formValues();
    const seed = $("seed").value.trim();
    const seedProblem = checkSeed(seed);
    $("seed").classList.toggle("invalid", Boolean(seedProblem));
    if (!params || seedProblem) {
      showError({ code: "invalid_form", message: seedProblem ?? "fix the fields marked in red first" });
      return;
    }
    let id;
    do id = `${generator.replace(/[^A-Za-z0-9_-]/g, "_")}-${app.nextNumber++}`; while (app.streams.has(id));
    const used = new Set([...app.streams.values()].map((x) => x.color));
    const color = COLORS.find((c) => !used.has(c)) ?? COLORS[app.nextNumber % COLORS.length];
    const s = new Stream(id, generator, params, seed, color);
    app.streams.set(id, s);
    if (send(subscribeMessage(s, 0))) {
      app.selected = id;
      renderStreamList();
      renderFormMode();
    } else {
      app.streams.delete(id);
    }
  }

  // -- named streams ---------------------------------------------------------------
  async function loadNamed() {
    try {
      const listing = await fetchJSON("streams");
      app.named = listing.streams.map((x) => x.name);
    } catch (err) {
      app.named = [];
    }
    const select = $("named-stream");
    const keep = select.value;
    select.replaceChildren(...(app.named.length ? app.named.map((n) => el("option", { value: n, text: n }))
                                                : [el("option", { value: "", text: "none defined" })]));
    if (app.named.includes(keep)) select.value = keep;
    select.disabled = $("named-subscribe").disabled = app.named.length === 0;
    $("operator").hidden = !adminToken || app.named.length === 0;
  }

  function subscribeNamed() {
    const name = $("named-stream").value;
    if (!name) return;
    let id;
    do id = `${name.replace(/[^A-Za-z0-9_-]/g, "_")}-${app.nextNumber++}`; while (app.streams.has(id));
    const used = new Set([...app.streams.values()].map((x) => x.color));
    const color = COLORS.find((c) => !used.has(c)) ?? COLORS[app.nextNumber % COLORS.length];
    const s = new Stream(id, name, {}, "", color);
    s.named = name;
    s.anomalous = true;              // named streams carry labels (injected anomalies)
    app.streams.set(id, s);
    if (send(subscribeMessage(s, 0))) renderStreamList();
    else app.streams.delete(id);
  }

  function operate(type, extra) {
    const stream = $("named-stream").value;
    if (!stream) return;
    app.ops = (app.ops ?? 0) + 1;
    $("op-status").textContent = `${type} sent…`;
    send({ type, id: `op-${app.ops}`, stream, admin_token: adminToken, ...extra });
  }

  function operatorUpdate() {
    let params;
    try { params = JSON.parse($("op-params").value); } catch (err) {
      showError({ code: "invalid_form", message: `update params: not JSON (${err.message})` });
      return;
    }
    operate("update", { params });
  }

  function operatorInject() {
    const kind = $("op-kind").value;
    const anomaly = { kind };
    const height = Number($("op-height").value);
    if (["level-shift", "spike"].includes(kind) && Number.isFinite(height)) anomaly.height = height;
    const duration = Number($("op-duration").value);
    operate("inject", duration > 0 ? { anomaly, duration } : { anomaly });
  }

  function pause(id) { send({ type: "pause", id }); }
  function resume(id) { send({ type: "resume", id }); }

  function stop(id) {
    const s = app.streams.get(id);
    if (!s) return;
    if (!app.ws || app.ws.readyState !== WebSocket.OPEN) { removeStream(id); return; }
    s.status = "stopping";
    send({ type: "unsubscribe", id });
    renderStreamList();
  }

  function removeStream(id) {
    const s = app.streams.get(id);
    if (!s) return;
    clearTimeout(s.debounce);
    app.streams.delete(id);
    if (app.selected === id) app.selected = null;
    renderStreamList();
    renderFormMode();
    scheduleRender();
  }

  // -- the stream list -------------------------------------------------------------
  function renderStreamList() {
    const list = $("streams");
    list.replaceChildren();
    for (const s of app.streams.values()) {
      const running = s.status === "running";
      const paused = s.status === "paused";
      list.append(el("li", { id: `stream-${s.id}`, "data-id": s.id, "data-status": s.status,
                             class: s.id === app.selected ? "stream selected" : "stream" },
        el("div", { class: "stream-head" },
          el("span", { class: "swatch", style: `background:${s.color}` }),
          el("button", { type: "button", class: "name", id: `select-${s.id}`, title: "edit this stream's parameters",
                         text: s.id, onclick: () => select(s.id) }),
          el("span", { class: "state", id: `state-${s.id}`, text: s.status })),
        el("div", { class: "meta" },
          "seed ", el("code", { id: `seed-${s.id}`, title: "the seed in use: same generator, parameters and seed give the same stream",
                                text: s.seed ?? "…" }),
          " · seq ", el("span", { id: `seq-${s.id}`, text: s.lastSeq ?? "–" }),
          s.anomalous ? el("span", {}, " · anomalies ", el("span", { id: `anomalies-${s.id}`, text: s.anomalies })) : null),
        el("div", { class: "buttons" },
          el("button", { type: "button", id: `pause-${s.id}`, disabled: !running, onclick: () => pause(s.id), text: "Pause" }),
          el("button", { type: "button", id: `resume-${s.id}`, disabled: !paused, onclick: () => resume(s.id), text: "Resume" }),
          el("button", { type: "button", id: `stop-${s.id}`, class: "danger", disabled: s.status === "stopping",
                         onclick: () => stop(s.id), text: "Stop" }))));
    }
    $("no-streams").hidden = app.streams.size > 0;
  }

  // -- the chart -----------------------------------------------------------------
  function scheduleRender() {
    if (app.renderTimer === null) app.renderTimer = setTimeout(render, RENDER_EVERY_MS);
  }

  function chartSize() {
    const box = $("chart");
    return { width: Math.max(320, box.clientWidth), height: Math.max(260, Math.min(560, window.innerHeight - 230)) };
  }

  /** The anomaly windows of each labelled stream in the chart: runs of
   * consecutive labelled samples, [seq first, seq last] and their x span. */
  function anomalyWindows(s) {
    const out = [];
    let start = -1;
    for (let i = 0; i <= s.label.length; i++) {
      const on = i < s.label.length && s.label[i] && !(start >= 0 && s.gapS[i]);
      if (on && start < 0) start = i;
      if (!on && start >= 0) {
        out.push({ first: s.seq[start], last: s.seq[i - 1], i0: start, i1: i - 1 });
        start = i < s.label.length && s.label[i] ? i : -1;
      }
    }
    return out;
  }

  /** Anomaly windows as shaded bands, half a sample wider on each side. */
  function drawBands(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const time = app.xMode === "time";
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    let bands = 0;
    for (const s of app.chartStreams) {
      if (!s.anomalous) continue;
      const xs = time ? s.tx : s.seq;
      const half = time ? (s.dt || 0) / 2 : 0.5;
      ctx.fillStyle = BAND_FILL;
      for (const w of anomalyWindows(s)) {
        const x0 = u.valToPos(xs[w.i0] - half, "x", true);
        const x1 = u.valToPos(xs[w.i1] + half, "x", true);
        ctx.fillRect(x0, top, Math.max(x1 - x0, 2 * uPlot.pxRatio), height);
        bands += 1;
      }
    }
    app.bandsDrawn = bands;
    ctx.restore();
  }

  /** Dashed vertical lines where an update took effect. */
  function drawMarkers(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.lineWidth = uPlot.pxRatio;
    ctx.setLineDash([5 * uPlot.pxRatio, 4 * uPlot.pxRatio]);
    for (const s of app.chartStreams) {
      if (!s.seq.length) continue;
      s.markers = s.markers.filter((m) => m >= s.seq[0]);   // forget those scrolled out
      for (const m of s.markers) {
        const i = m - s.seq[0];
        if (i < 0 || i >= s.seq.length || s.seq[i] !== m) continue;
        const x = u.valToPos(app.xMode === "time" ? s.tx[i] : s.seq[i], "x", true);
        ctx.strokeStyle = s.color;
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + height);
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  function makePlot(streams) {
    const series = [{ label: app.xMode === "time" ? "time" : "seq" }];
    for (const s of streams) {
      series.push({ label: `${s.id} (${s.generator})`, stroke: s.color, width: 1.5, spanGaps: false,
                    points: { show: false } });
      if (s.anomalous) {
        series.push({ label: `${s.id} anomalies`, stroke: ANOMALY_COLOR, fill: ANOMALY_COLOR, width: 0,
                      paths: () => null, spanGaps: false,
                      points: { show: true, size: 9, width: 2, stroke: ANOMALY_EDGE, fill: ANOMALY_COLOR } });
      }
    }
    const opts = {
      ...chartSize(),
      scales: { x: { time: app.xMode === "time" } },
      series,
      axes: [{ stroke: "#444", grid: { stroke: "#eee" } }, { stroke: "#444", grid: { stroke: "#eee" }, size: 60 }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [drawMarkers, (u) => { for (const hook of app.drawHooks) hook(u); }], drawAxes: [drawBands] },
    };
    const box = $("chart");
    box.replaceChildren();
    return new uPlot(opts, [[]], box);
  }

  /** [x, values(, anomaly markers)] of one stream; a null point between two
   * samples where the line must break (see addSamples). */
  function chartTable(s) {
    const time = app.xMode === "time";
    const xs = time ? s.tx : s.seq;
    const gaps = time ? s.gapT : s.gapS;
    const x = [], v = [], a = [];
    for (let i = 0; i < xs.length; i++) {
      if (gaps[i] && i > 0) {
        x.push((xs[i - 1] + xs[i]) / 2);
        v.push(null);
        a.push(null);
      }
      x.push(xs[i]);
      v.push(s.v[i]);
      a.push(s.label[i] && s.v[i] !== null ? s.v[i] : null);
    }
    return s.anomalous ? [x, v, a] : [x, v];
  }

  function render() {
    app.renderTimer = null;
    const streams = [...app.streams.values()].flatMap((s) => s.channelStreams ?? [s]).filter((s) => s.seq.length > 0);
    const key = app.xMode + "|" + streams.map((s) => s.id + (s.anomalous ? "+a" : "")).join("|");
    if (!streams.length) {
      if (app.plot) { app.plot.destroy(); app.plot = null; }
      app.plotKey = "";
      app.chartStreams = [];
      $("chart").replaceChildren(el("p", { class: "placeholder", text: "No data yet: start a stream." }));
      return;
    }
    if (key !== app.plotKey || !app.plot) {
      if (app.plot) app.plot.destroy();
      app.plot = makePlot(streams);
      app.plotKey = key;
    }
    app.chartStreams = streams;
    const tables = streams.map(chartTable);
    // Other streams' x values leave `undefined` in a series (skipped by the
    // line); its own gaps (null) are widened over them so the line breaks.
    const nullModes = streams.map((s) => (s.anomalous ? [null, 2, 1] : [null, 2]));
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables, nullModes);
    app.plot.setData(data);
    for (const s of streams) {
      s.drawn = s.v.reduce((n, v) => n + (v === null ? 0 : 1), 0);
      s.anomaliesDrawn = s.label.reduce((n, l, i) => n + (l && s.v[i] !== null ? 1 : 0), 0);
      const seq = $(`seq-${s.id}`);
      if (seq) seq.textContent = s.lastSeq ?? "–";
      const an = $(`anomalies-${s.id}`);
      if (an) an.textContent = s.anomalies;
    }
  }

  // -- wiring ------------------------------------------------------------------
  function wire() {
    $("generator").addEventListener("change", () => {
      // Another kind: the form now describes a new stream; what was said about the last one goes.
      app.selected = null;
      clearMessages();
      buildForm(app.catalogue.get($("generator").value), null);
    });
    $("start").addEventListener("click", start);
    $("named-subscribe").addEventListener("click", subscribeNamed);
    $("op-update").addEventListener("click", operatorUpdate);
    $("op-inject").addEventListener("click", operatorInject);
    $("new").addEventListener("click", () => select(null));
    $("reconnect").addEventListener("click", () => { app.retries = 0; connect(); });
    $("seed").addEventListener("input", () => $("seed").classList.toggle("invalid", Boolean(checkSeed($("seed").value.trim()))));
    $("xaxis").addEventListener("change", () => { app.xMode = $("xaxis").value; app.plotKey = ""; render(); });
    $("window").addEventListener("change", () => {
      const n = Math.round(Number($("window").value));
      if (!(n >= 10 && n <= 100000)) { $("window").value = app.windowSize; return; }
      app.windowSize = n;
      for (const s of app.streams.values()) {
        const excess = s.seq.length - n;
        if (excess > 0) for (const a of [s.seq, s.tx, s.v, s.label, s.gapT, s.gapS]) a.splice(0, excess);
      }
      render();
    });
    window.addEventListener("resize", () => app.plot?.setSize(chartSize()));
    render();
    renderStreamList();
    renderFormMode();
  }

  // -- test hooks (the browser test reads these instead of parsing pixels) ---------
  function streamInfo(s) {
    return { id: s.id, generator: s.generator, status: s.status, seed: s.seed, params: s.params,
             lastSeq: s.lastSeq, received: s.received, drawn: s.drawn, anomaliesDrawn: s.anomaliesDrawn,
             anomalies: s.anomalies, updatedSeq: s.updatedSeq, color: s.color };
  }

  window.wsgen = {
    get state() { return app.state; },
    get wsUrl() { return app.wsUrl; },
    get lastUpdatedSeq() { return app.lastUpdatedSeq; },
    get selected() { return app.selected; },
    streams: () => [...app.streams.values()].map(streamInfo),
    stream: (id) => (app.streams.has(id) ? streamInfo(app.streams.get(id)) : null),
    pointsDrawn: (id) => app.streams.get(id)?.drawn ?? 0,
    anomaliesDrawn: (id) => app.streams.get(id)?.anomaliesDrawn ?? 0,
    /** The last `n` samples kept for the chart: [{seq, t, value, label}]. */
    lastValues: (id, n = Infinity) => {
      const s = app.streams.get(id);
      if (!s) return [];
      const from = Math.max(0, s.seq.length - n);
      return s.seq.slice(from).map((seq, k) => ({ seq, t: s.tx[from + k], value: s.v[from + k], label: s.label[from + k] }));
    },
    seriesLabels: () => (app.plot ? app.plot.series.slice(1).map((x) => x.label) : []),
    /** A composition's channels (one line each): [{name, color, drawn, anomaliesDrawn, points: [{seq, value, label}]}]. */
    channels: (id) => (app.streams.get(id)?.channelStreams ?? []).map((c) => ({
      name: c.generator, color: c.color, drawn: c.drawn, anomaliesDrawn: c.anomaliesDrawn,
      points: c.seq.map((seq, k) => ({ seq, value: c.v[k], label: c.label[k] })) })),
    /** Anomaly windows of a stream's kept samples: [{first, last}] (drawn as bands). */
    anomalyWindows: (id) => (app.streams.has(id) ? anomalyWindows(app.streams.get(id)).map(({ first, last }) => ({ first, last })) : []),
    get bandsDrawn() { return app.bandsDrawn ?? 0; },
    errors: () => app.errors.slice(),
    namedStreams: () => (app.named ?? []).slice(),
    sent: () => ({ ...app.sent }),
  };

  /** What compose.js and share.js build on (one page, several files). */
  window.wsgenPage = {
    app, el, fmt, send, showError, clearMessages, renderStreamList, renderFormMode, checkSeed, token,
    /** Start a composition stream: like Start, with a spec for its generator. */
    startComposition(spec, seed) {
      let id;
      do id = `composite-${app.nextNumber++}`; while (app.streams.has(id));
      const used = new Set([...app.streams.values()].map((x) => x.color));
      const color = COLORS.find((c) => !used.has(c)) ?? COLORS[app.nextNumber % COLORS.length];
      const s = new Stream(id, "composite", {}, seed, color);
      s.spec = spec;
      s.anomalous = true;
      app.streams.set(id, s);
      if (send(subscribeMessage(s, 0))) {
        app.selected = null;
        renderStreamList();
        return id;
      }
      app.streams.delete(id);
      return null;
    },
    /** Subscribe to `generator` (a name, with `params`; "composite": `params` is the spec) from
     * `startSeq` at `speed` (default 1), as stream `id` (a watched detector's stream, watch.js); the id,
     * or null if not sent. */
    startFrom(id, generator, params, seed, startSeq, speed = null) {
      const used = new Set([...app.streams.values()].map((x) => x.color));
      const color = COLORS.find((c) => !used.has(c)) ?? COLORS[app.nextNumber % COLORS.length];
      const composite = generator === "composite";
      const s = new Stream(id, generator, composite ? {} : params, seed, color);
      if (composite) s.spec = params;
      s.anomalous = true;
      app.streams.set(id, s);
      const msg = subscribeMessage(s, startSeq);
      if (speed !== null) msg.speed = speed;
      if (send(msg)) { renderStreamList(); return id; }
      app.streams.delete(id);
      return null;
    },
    scheduleRender,
    subscribeMessage,
    selectedStream: () => app.streams.get(app.selected) ?? null,
    formValues,
  };

  wire();
  connect();
})();
