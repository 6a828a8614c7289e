// Watch a detector: another connection's scored subscription, read-only
// (docs/protocol.md, `watch`). Opened as `?watch=<token>&id=<subscription id>`
// or from the "Watch a detector" panel. The page sends `watch`, subscribes
// itself to the same stream definition from `watching.of` (same generator,
// params and seed from `of.first`: the stream is deterministic, so its seqs
// are the owner's), draws the owner's alarms as marks at their seq, and
// shows the live figures from a `score` on the watch id every second (and
// soon after new alarms). The page itself sends no detections.
(() => {
  "use strict";
  const page = window.wsgenPage;
  if (!page) return;
  const { app, el, fmt } = page;
  const $ = (id) => document.getElementById(id);

  const SCORE_EVERY_MS = 1000;
  const ALARM_COLOR = "#111";
  const CATCH_UP_SPEED = 10;   // the page's stream runs this much faster until it reaches the owner's last seq

  // The one watch of the page: {token, name, watchId, streamId, alarms: Set, figures, status, timer}.
  let w = null;

  function watch(token, name) {
    token = (token || "").trim();
    name = (name || "").trim() || "detector";
    if (!token) { page.showError({ code: "client", message: "watch: paste the watch token (subscribed.score.watch of the detector's subscription)" }); return; }
    if (w) unwatch();
    let streamId = name;
    while (app.streams.has(streamId)) streamId += "'";
    w = { token, name, watchId: `watch:${name}`, streamId, alarms: new Set(), figures: null, status: "watching…",
          timer: null, soon: null, drawn: [] };
    renderPanel();
    if (app.state === "open") sendWatch();
  }

  function sendWatch() {
    if (w) page.send({ type: "watch", id: w.watchId, token: w.token });
  }

  function unwatch() {
    if (!w) return;
    clearInterval(w.timer);
    clearTimeout(w.soon);
    if (app.state === "open") page.send({ type: "unwatch", id: w.watchId });
    w = null;
    renderPanel();
    page.scheduleRender();
  }

  function askScore() {
    if (w && w.status === "watching" && app.state === "open") page.send({ type: "score", id: w.watchId });
  }

  /** The figures shown: [label, text]. */
  function figureRows(f) {
    const e = f.events, d = f.delay.samples, ds = f.delay.seconds;
    return [
      ["alarms", String(f.alarms)],
      ["precision", fmt(e.precision)],
      ["recall", fmt(e.recall)],
      ["F1", fmt(e.f1)],
      ["NAB standard", fmt(f.nab.standard.score)],
      ["delay (samples)", d.median === null ? "–" : `median ${fmt(d.median)} · max ${fmt(d.max)}`],
      ["delay (s)", ds.median === null ? "–" : `median ${fmt(ds.median)} · max ${fmt(ds.max)}`],
      ["events", `${e.detected} of ${e.windows} windows · ${e.false_positives} false positive${e.false_positives === 1 ? "" : "s"}`],
      ["scored", `seq ${f.first}…${f.last}`],
    ];
  }

  function renderPanel() {
    $("watch-stop").hidden = !w;
    $("watch-box").hidden = !w;
    $("watch-status").textContent = w ? `${w.name}: ${w.status}` : "";
    const box = $("watch-figures");
    if (!w || !w.figures) { box.replaceChildren(); return; }
    box.replaceChildren(...figureRows(w.figures).map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v, "data-figure": k }))));
  }

  // -- server messages ----------------------------------------------------------
  app.handlers.watching = (msg, raw) => {
    if (!w || msg.id !== w.watchId) return;
    const of = msg.of;
    // the seed exactly, also beyond 2**53 (of: generator, params, seed, first)
    const m = /"seed":\s*(\d+)\s*,\s*"first"/.exec(raw);
    const seed = m ? m[1] : String(of.seed);
    for (const seq of msg.alarms) w.alarms.add(seq);
    w.of = of;
    w.status = "watching";
    if (!app.streams.has(w.streamId)) {
      if (of.generator !== "composite" && !app.catalogue.has(of.generator)) {
        w.status = `watching (its stream ${JSON.stringify(of.generator)} cannot be drawn here)`;
      } else {
        // From the owner's first seq, or one chart window before its last; at CATCH_UP_SPEED until
        // a score reply says the owner is no further (then speed 1: the owner's speed is not known).
        const from = Math.max(of.first, msg.last + 1 - app.windowSize);
        w.catchingUp = msg.last >= from;
        w.from = from;
        page.startFrom(w.streamId, of.generator, of.params, seed, from, w.catchingUp ? CATCH_UP_SPEED : null);
      }
    }
    clearInterval(w.timer);
    w.timer = setInterval(askScore, SCORE_EVERY_MS);
    askScore();
    renderPanel();
    page.scheduleRender();
  };

  app.handlers.detections = (msg) => {
    if (!w || msg.id !== w.watchId) return;
    for (const seq of msg.seqs) w.alarms.add(seq);
    clearTimeout(w.soon);
    w.soon = setTimeout(askScore, 100);     // the figures follow new alarms without waiting a full second
    page.scheduleRender();
  };

  app.handlers.score = (msg) => {
    if (!w || msg.id !== w.watchId) return;
    w.figures = msg;
    const s = app.streams.get(w.streamId);
    if (w.catchingUp && s && s.lastSeq !== null && s.lastSeq >= msg.last) endCatchUp();
    renderPanel();
  };

  function endCatchUp() {
    const s = app.streams.get(w.streamId);
    w.catchingUp = false;
    if (!s || app.state !== "open") return;
    s.quietUpdates = (s.quietUpdates ?? 0) + 1;
    page.send({ type: "update", id: w.streamId, speed: 1 });
  }

  app.handlers.unwatched = (msg) => {
    if (!w || msg.id !== w.watchId) return;
    if (w.catchingUp) endCatchUp();
    clearInterval(w.timer);
    if (msg.score) w.figures = msg.score;       // the final figures
    w.status = `ended (${msg.reason})`;
    renderPanel();
  };

  // The watch refused (unknown_id: no such token, or the owner is gone): shown in the error box, and here.
  app.handlers.error = (msg) => {
    if (!w || msg.id !== w.watchId || w.status === "watching") return;
    w.status = `refused (${msg.code})`;
    renderPanel();
  };

  // After a reconnect the server forgot the watch: ask again (the owner may be gone: then an unknown_id error).
  app.openHooks.push(() => {
    if (!w || w.status.startsWith("ended") || w.status.startsWith("refused")) return;
    clearInterval(w.timer);
    w.status = "watching…";
    sendWatch();
    renderPanel();
  });

  // -- chart: a solid line and a triangle on top at each alarm of the watched stream -------
  app.drawHooks.push((u) => {
    if (!w) return;
    const s = app.chartStreams.find((x) => x.id === w.streamId);
    w.drawn = [];
    if (!s || !s.seq.length) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const r = uPlot.pxRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.strokeStyle = ALARM_COLOR;
    ctx.fillStyle = ALARM_COLOR;
    ctx.lineWidth = 1.5 * r;
    for (const seq of [...w.alarms].sort((a, b) => a - b)) {
      const i = seq - s.seq[0];
      if (i < 0 || i >= s.seq.length || s.seq[i] !== seq) continue;     // not among the samples kept
      const x = u.valToPos(app.xMode === "time" ? s.tx[i] : s.seq[i], "x", true);
      ctx.beginPath();
      ctx.moveTo(x, top + 8 * r);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(x - 5 * r, top);
      ctx.lineTo(x + 5 * r, top);
      ctx.lineTo(x, top + 9 * r);
      ctx.fill();
      w.drawn.push(seq);
    }
    ctx.restore();
  });

  // -- wiring ---------------------------------------------------------------------
  $("watch-start").addEventListener("click", () => watch($("watch-token").value, $("watch-name").value));
  $("watch-stop").addEventListener("click", unwatch);
  const url = new URL(location.href);
  if (url.searchParams.get("watch")) {
    $("watch-token").value = url.searchParams.get("watch");
    $("watch-name").value = url.searchParams.get("id") || "";
    watch($("watch-token").value, $("watch-name").value);
  }

  /** Test hooks: the watch, its alarms, the alarms drawn on the chart, the last figures. */
  window.wsgen.watch = {
    get active() { return Boolean(w); },
    get status() { return w ? w.status : null; },
    get streamId() { return w ? w.streamId : null; },
    get catchingUp() { return w ? Boolean(w.catchingUp) : null; },
    get from() { return w ? w.from ?? null : null; },
    alarms: () => (w ? [...w.alarms].sort((a, b) => a - b) : []),
    alarmsDrawn: () => (w ? w.drawn.slice() : []),
    figures: () => (w ? w.figures : null),
    shown: () => Object.fromEntries([...document.querySelectorAll("#watch-figures dd")].map((d) => [d.dataset.figure, d.textContent])),
  };
})();
