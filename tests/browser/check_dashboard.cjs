// Drives headless Chromium (Debian's, through puppeteer-core from web/) at the
// origin's dashboard and compares what the page shows, read from its DOM
// (the per-domain table), with `patchswarm rollout NAME --json` run at about
// the same time. Polls until both agree for every expected domain and each
// domain has `expect` complete nodes; fails when they never do. Then it checks
// itself: a number changed in the page must make the comparison fail. Saves a
// screenshot and prints its path.
"use strict";
const { execFile } = require("node:child_process");
const { createRequire } = require("node:module");
const path = require("node:path");

function args() {
  const a = {};
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) a[v[i].replace(/^--/, "")] = v[i + 1];
  for (const k of ["web", "url", "chromium", "patchswarm", "socket", "name", "domains", "expect", "screenshot", "timeout"])
    if (a[k] === undefined) throw new Error("missing --" + k);
  return a;
}

function rollout(a) {
  return new Promise((resolve) => {
    execFile(a.patchswarm, ["rollout", a.name, "--json", "--socket", a.socket], { timeout: 15000 }, (err, stdout) => {
      if (err) return resolve({ error: String(err.message || err).split("\n")[0] });
      try { resolve(JSON.parse(stdout)); } catch (e) { resolve({ error: "rollout printed no JSON: " + e.message }); }
    });
  });
}

// What the page shows: the table's cells, as a person would read them.
async function shown(page) {
  return page.evaluate(() => {
    const out = {};
    for (const tr of document.querySelectorAll("#domains tbody tr")) {
      const row = {};
      for (const td of tr.querySelectorAll("td[data-field]")) row[td.dataset.field] = td.textContent.trim();
      out[tr.dataset.domain] = row;
    }
    return out;
  });
}

// "" when the page and the rollout agree for every expected domain (and the
// page shows no other), else what differs.
function compare(page, roll, domains, expect) {
  if (roll.error) return "rollout: " + roll.error;
  const by = Object.fromEntries((roll.domains || []).map(d => [d.domain, d]));
  const diffs = [];
  const extra = Object.keys(page).filter(d => !domains.includes(d));
  if (extra.length) diffs.push("page shows unexpected domains " + extra.join(","));
  for (const d of domains) {
    const p = page[d], r = by[d];
    if (!p) { diffs.push(d + ": not on the page"); continue; }
    if (!r) { diffs.push(d + ": not in rollout"); continue; }
    for (const f of ["online", "holders", "complete"])
      if (p[f] !== String(r[f])) diffs.push(`${d}.${f}: page ${p[f]}, rollout ${r[f]}`);
    if (r.complete !== expect) diffs.push(`${d}: ${r.complete} of ${expect} complete so far`);
  }
  return diffs.join("; ");
}

async function main() {
  const a = args();
  const domains = a.domains.split(/\s+/).filter(Boolean);
  const expect = Number(a.expect);
  const puppeteer = createRequire(path.join(a.web, "package.json"))("puppeteer-core");
  const t0 = Date.now();
  const browser = await puppeteer.launch({
    executablePath: a.chromium, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  let status = 1;
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1100 });
    const errors = [];
    page.on("pageerror", e => errors.push(String(e)));
    await page.goto(a.url, { waitUntil: "load", timeout: 15000 });
    let last = "", agreed = false;
    const deadline = t0 + Number(a.timeout) * 1000;
    while (Date.now() < deadline) {
      const [p, r] = await Promise.all([shown(page), rollout(a)]);
      last = compare(p, r, domains, expect);
      if (!last) { agreed = true; break; }
      await new Promise(res => setTimeout(res, 1000));
    }
    const charts = await page.evaluate(() => ({ uplot: typeof uPlot !== "undefined",
                                                canvases: document.querySelectorAll(".chart canvas").length }));
    await page.screenshot({ path: a.screenshot, fullPage: true });
    console.log("screenshot: " + a.screenshot);
    if (!agreed) {
      console.error("the dashboard and `patchswarm rollout` never agreed within " + a.timeout + " s: " + last);
    } else if (errors.length) {
      console.error("the page raised errors: " + errors.join("; "));
    } else if (!charts.uplot || charts.canvases < 4) {
      console.error(`charts missing: uPlot loaded ${charts.uplot}, ${charts.canvases} canvases (want 4)`);
    } else {
      // The comparison reads the page: a number changed in the DOM must fail it.
      const r = await rollout(a);
      await page.evaluate((d) => {
        const td = document.querySelector(`#domains tr[data-domain="${d}"] td[data-field="complete"]`);
        td.textContent = String(Number(td.textContent) + 1);
      }, domains[0]);
      const tampered = compare(await shown(page), r, domains, expect);
      if (!tampered) {
        console.error("self-check failed: a wrong number on the page went unnoticed");
      } else {
        console.log(`dashboard agrees with rollout for ${domains.join(", ")} (${expect} of ${expect} complete each) ` +
                    `after ${((Date.now() - t0) / 1000).toFixed(1)} s; a tampered page is caught (${tampered})`);
        status = 0;
      }
    }
  } finally {
    await browser.close();
  }
  process.exit(status);
}

main().catch(e => { console.error(e); process.exit(1); });
