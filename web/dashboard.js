// patchswarm's dashboard page: reads /api/state (the node's ring buffer of
// samples) every interval and draws it. Served by the daemon (node/dashboard.cpp).
"use strict";
(function () {
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const charts = {};
  let interval = 3000;

  function human(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : String(Math.round(bytes))) + " " + units[i];
  }

  function cell(row, field, value, text) {
    const td = document.createElement("td");
    td.dataset.field = field;
    td.dataset.value = String(value);
    td.textContent = text === undefined ? String(value) : text;
    row.appendChild(td);
  }

  function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }

  function renderTable(latest) {
    const body = document.querySelector("#domains tbody");
    body.textContent = "";
    const names = Object.keys(latest ? latest.domains : {}).sort();
    for (const name of names) {
      const d = latest.domains[name];
      const tr = document.createElement("tr");
      tr.dataset.domain = name;
      const th = document.createElement("td");
      th.textContent = name;
      tr.appendChild(th);
      cell(tr, "online", d.online);
      cell(tr, "holders", d.holders);
      cell(tr, "complete", d.complete);
      cell(tr, "bytes_imported", d.bytes_imported, human(d.bytes_imported));
      cell(tr, "bans", d.bans);
      cell(tr, "rejected", sum(d.rejected), Object.entries(d.rejected).map(([k, v]) => k + " " + v).join(", "));
      cell(tr, "age_s", d.age_s, d.age_s + " s");
      body.appendChild(tr);
    }
  }

  // One chart: x = sample times, series = [[label, values], ...]; rebuilt
  // when its series change, otherwise only given new data.
  function draw(id, series, yfmt) {
    if (typeof uPlot === "undefined") return;
    const el = document.getElementById(id);
    const labels = series.slice(1).map(s => s[0]).join("|");
    const data = series.map(s => s[1]);
    let c = charts[id];
    if (c && c.labels !== labels) { c.plot.destroy(); c = null; }
    if (!c) {
      const opts = {
        width: Math.max(480, el.clientWidth || 520), height: 240,
        series: [{}].concat(series.slice(1).map((s, i) => ({
          label: s[0], stroke: palette[i % palette.length], width: 1.5,
          value: (u, v) => v == null ? "-" : (yfmt ? yfmt(v) : v) }))),
        axes: [{}, { values: (u, vals) => vals.map(v => yfmt ? yfmt(v) : v), size: 84 }],
      };
      c = charts[id] = { labels, plot: new uPlot(opts, data, el) };
    } else {
      c.plot.setData(data);
    }
  }

  function renderCharts(samples) {
    const t = samples.map(s => s.t);
    const names = [...new Set(samples.flatMap(s => Object.keys(s.domains)))].sort();
    const per = (name, f) => samples.map(s => s.domains[name] ? f(s.domains[name]) : null);
    const rollout = [["t", t]];
    for (const n of names) {
      rollout.push([n + " online", per(n, d => d.online)]);
      rollout.push([n + " holding", per(n, d => d.holders)]);
      rollout.push([n + " complete", per(n, d => d.complete)]);
    }
    draw("chart-rollout", rollout);
    draw("chart-source", [["t", t], ["served", samples.map(s => s.served_rate)]], v => human(v) + "/s");
    draw("chart-imports", [["t", t]].concat(names.map(n => [n, per(n, d => d.bytes_imported)])), human);
    const kinds = [...new Set(samples.flatMap(s => Object.keys(s.rejected).concat(
      Object.values(s.domains).flatMap(d => Object.keys(d.rejected)))))].sort();
    const rejects = [["t", t], ["bans", samples.map(s => s.bans + sum(Object.fromEntries(
      Object.entries(s.domains).map(([k, d]) => [k, d.bans]))))]];
    for (const k of kinds)
      rejects.push(["rejected " + k, samples.map(s => (s.rejected[k] || 0) +
        Object.values(s.domains).reduce((a, d) => a + (d.rejected[k] || 0), 0))]);
    draw("chart-rejects", rejects);
  }

  async function refresh() {
    try {
      const r = await fetch("/api/state", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const st = await r.json();
      interval = Math.max(500, (st.interval_s || 3) * 1000);
      const latest = st.samples.length ? st.samples[st.samples.length - 1] : null;
      const patch = st.patch ? st.patch.name + " v" + st.patch.version : "no patch yet";
      document.getElementById("meta").textContent =
        st.role + " (" + st.domain + ") · " + patch + " · " + st.samples.length + " samples" +
        (latest ? " · updated " + new Date(latest.t * 1000).toLocaleTimeString() : "");
      document.body.dataset.updated = latest ? String(latest.t) : "";
      renderTable(latest);
      renderCharts(st.samples);
      document.getElementById("error").textContent = typeof uPlot === "undefined"
        ? "charts unavailable: uPlot was not installed when patchswarm was built (npm ci in web/)" : "";
    } catch (e) {
      document.getElementById("error").textContent = "cannot read /api/state: " + e.message;
    }
    setTimeout(refresh, interval);
  }
  refresh();
})();
