// "Copy as" and downloads: what a user built on the page, taken elsewhere.
//
// Copy as: the current stream (the selected one, else the newest, else what
// the form would start) as a WebSocket message, a WebSocket URL, an HTTP URL,
// a curl command, Python (wsgen.client) or a wsgen sub command, all with
// its seed, so the same samples come back in a test. Download: the samples
// on the chart, as CSV (stream,seq,t,value,label) or JSON (per stream: its
// generator, params, seed and samples).
(() => {
  "use strict";
  const page = window.wsgenPage;
  if (!page) return;
  const { app, el } = page;
  const $ = (id) => document.getElementById(id);

  const FORMATS = {
    message: "WebSocket message",
    ws_url: "WebSocket URL",
    http_url: "HTTP URL",
    curl: "curl",
    python: "Python",
    wsgen_sub: "wsgen sub",
  };

  /** The stream to describe: {generator, params, spec, seed}. */
  function current() {
    const s = page.selectedStream() ?? [...app.streams.values()].pop();
    if (s && !s.named) {
      return { id: s.id, generator: s.generator, params: s.params ?? {}, spec: s.spec, seed: s.seed ?? (s.seedWanted || null) };
    }
    const generator = $("generator").value;
    const params = page.formValues();
    if (!generator || !params) return null;
    return { id: generator, generator, params, spec: null, seed: $("seed").value.trim() || null };
  }

  const httpBase = () => `${location.protocol}//${location.host}`;
  const wsBase = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const q = (v) => `'${String(v).replace(/'/g, `'"'"'`)}'`;                  // shell single quotes
  const jsonParam = (v) => (typeof v === "string" ? v : JSON.stringify(v));

  function query(c, extra = {}) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(c.params)) if (v !== null && v !== undefined) p.set(k, jsonParam(v));
    if (c.seed) p.set("seed", c.seed);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p.toString();
  }

  /** The text of ``c`` in ``format``. */
  function render(c, format) {
    const seedField = c.seed ? `, "seed": ${c.seed}` : "";   // exact digits, also beyond 2**53
    const gen = c.spec ? JSON.stringify(c.spec) : JSON.stringify(c.generator);
    const tokenNote = page.token ? " (this server needs its token: add ?token=… / --token / Authorization)" : "";
    switch (format) {
      case "message":
        return c.spec
          ? `{"type": "subscribe", "id": "${c.id}", "generator": ${gen}${seedField}}`
          : `{"type": "subscribe", "id": "${c.id}", "generator": ${gen}, "params": ${JSON.stringify(c.params)}${seedField}}`;
      case "ws_url":
        return c.spec ? `# a composition is subscribed with a message (see "WebSocket message"), not a URL${tokenNote}`
          : `${wsBase()}/${c.generator}?${query(c)}`;
      case "http_url":
        return c.spec ? `${httpBase()}/composite?${new URLSearchParams({ spec: JSON.stringify(c.spec), ...(c.seed ? { seed: c.seed } : {}), format: "ndjson" })}`
          : `${httpBase()}/${c.generator}?${query(c, { format: "ndjson" })}`;
      case "curl":
        return c.spec
          ? `curl -N -X POST ${q(`${httpBase()}/composite?${new URLSearchParams({ ...(c.seed ? { seed: c.seed } : {}), format: "ndjson" })}`)} -H 'Content-Type: application/json' -d ${q(JSON.stringify(c.spec))}`
          : `curl -N ${q(`${httpBase()}/${c.generator}?${query(c, { format: "ndjson" })}`)}`;
      case "python": {
        const seed = c.seed ? `, seed=${c.seed}` : "";
        const call = c.spec ? `c.subscribe(${JSON.stringify(c.spec).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None")}${seed})`
          : `c.subscribe(${JSON.stringify(c.generator)}, ${JSON.stringify(c.params).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None")}${seed})`;
        return ["import asyncio", "from wsgen.client import Client", "",
                "async def main():",
                `    async with Client(${JSON.stringify(httpBase())}${page.token ? ", token=TOKEN" : ""}) as c:`,
                `        sub = await ${call}`,
                "        block = await sub.take(100)   # values, labels, seqs, timestamps",
                "        print(block.values)", "", "asyncio.run(main())"].join("\n");
      }
      case "wsgen_sub": {
        const seed = c.seed ? ` --seed ${c.seed}` : "";
        if (c.spec) return `wsgen sub --spec ${q(JSON.stringify(c.spec))}${seed} --url ${httpBase()}${page.token ? " --token \"$WSGEN_TOKEN\"" : ""}`;
        const params = Object.entries(c.params).filter(([, v]) => v !== null && v !== undefined)
          .map(([k, v]) => ` -p ${q(`${k}=${jsonParam(v)}`)}`).join("");
        return `wsgen sub ${c.generator} --defaults${params}${seed} --url ${httpBase()}${page.token ? " --token \"$WSGEN_TOKEN\"" : ""}`;
      }
      default:
        return "";
    }
  }

  function showCopy() {
    const format = $("copy-as").value;
    const box = $("copy-text");
    if (!format) { $("copy-box").hidden = true; return; }
    const c = current();
    box.value = c ? render(c, format) : "start a stream or fill in the form first";
    $("copy-box").hidden = false;
    $("copy-title").textContent = `${FORMATS[format]} of ${c ? c.id : "–"}`;
    box.select();
  }

  async function copy() {
    const box = $("copy-text");
    try {
      await navigator.clipboard.writeText(box.value);
      $("copy-status").textContent = "copied";
    } catch {
      box.select();
      $("copy-status").textContent = document.execCommand && document.execCommand("copy") ? "copied" : "select and copy it (Ctrl+C)";
    }
  }

  // -- downloads ------------------------------------------------------------------------
  function chartRows() {
    return app.chartStreams.map((s) => ({
      id: s.id, generator: s.generator, seed: s.seed, params: s.params,
      samples: s.seq.map((seq, i) => ({ seq, t: s.tx[i], value: s.v[i], label: s.label[i] })),
    }));
  }

  function exportText(kind) {
    const streams = chartRows();
    if (kind === "json") return JSON.stringify({ streams }, null, 1);
    const lines = ["stream,seq,t,value,label"];
    for (const s of streams) {
      for (const p of s.samples) lines.push(`${s.id},${p.seq},${p.t.toFixed(6)},${p.value === null ? "" : p.value},${p.label}`);
    }
    return lines.join("\n") + "\n";
  }

  function download(kind) {
    if (!app.chartStreams.length) { page.showError({ code: "nothing_to_download", message: "no samples on the chart yet" }); return; }
    const blob = new Blob([exportText(kind)], { type: kind === "json" ? "application/json" : "text/csv" });
    const a = el("a", { href: URL.createObjectURL(blob), download: `wsgen-chart.${kind}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }

  function setup() {
    const pick = $("copy-as");
    pick.append(...Object.entries(FORMATS).map(([v, text]) => el("option", { value: v, text })));
    pick.addEventListener("change", showCopy);
    $("copy-button").addEventListener("click", copy);
    $("copy-close").addEventListener("click", () => { pick.value = ""; showCopy(); });
    $("download-csv").addEventListener("click", () => download("csv"));
    $("download-json").addEventListener("click", () => download("json"));
  }

  setup();
  window.wsgen.copyAs = (format) => { const c = current(); return c ? render(c, format) : null; };
  window.wsgen.exportText = exportText;
})();
