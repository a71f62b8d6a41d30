#!/usr/bin/env node
// Real-player check: hls.js (or dash.js) in headless Chromium plays each master playlist (or
// MPD) URL given as an argument. Prints one JSON line per URL; exits 0 only if every URL
// reached currentTime >= 3 s with no fatal player error, no media error and no failed network
// request.
//
//   node play.mjs http://127.0.0.1:8080/demo/ts/master.m3u8 [more URLs...]
//
// Env: CHROMIUM (default /usr/bin/chromium), PLAY_TIMEOUT_MS (default 30000),
//      PLAY_TARGET_S (default 3), PLAY_SCREENSHOT_DIR (if set, a PNG per URL lands there),
//      PLAY_CMCD=1 (hls.js sends CMCD in the query, lowest rendition; each JSON line then
//      counts the player's requests and those that carried CMCD),
//      PLAY_DASH=1 (the URLs are MPDs, played in dash.js instead),
//      PLAY_INSECURE_TLS=1 (accept the edge's development certificate on https URLs).
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROME_ARGS, PAGE_FILES as FILES } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.PLAY_TIMEOUT_MS || 30000);
const TARGET_S = Number(process.env.PLAY_TARGET_S || 3);
const SHOTS = process.env.PLAY_SCREENSHOT_DIR || '';
const CMCD = process.env.PLAY_CMCD === '1';
const DASH = process.env.PLAY_DASH === '1';
const INSECURE_TLS = process.env.PLAY_INSECURE_TLS === '1';

const urls = process.argv.slice(2);
if (urls.length === 0) {
  console.error('usage: node play.mjs <master.m3u8 URL>...');
  process.exit(2);
}

// Chromium reaches nothing but loopback (CHROME_ARGS); the page and the players' scripts come
// from a static server on its own loopback port (a different origin than the edge, so the
// edge's CORS headers are exercised).
const server = http.createServer((req, res) => {
  const f = FILES[new URL(req.url, 'http://x').pathname];
  if (!f) { res.writeHead(404).end('not found'); return; }
  fs.readFile(path.join(here, f[0]), (err, body) => {
    if (err) { res.writeHead(500).end(String(err)); return; }
    res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' }).end(body);
  });
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const pageUrl = `http://127.0.0.1:${server.address().port}/page.html`;

async function playOne(url) {
  const started = Date.now();
  const out = { url, ok: false };
  const failedRequests = [];
  const pageErrors = [];
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-player-profile-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROME_ARGS,
      viewport: { width: 800, height: 450 },
      // The player check's HTTPS listener has a development certificate.
      ignoreHTTPSErrors: INSECURE_TLS,
    });
    const page = ctx.pages()[0] || (await ctx.newPage());
    page.on('requestfailed', (rq) => {
      failedRequests.push({ url: rq.url(), error: rq.failure() ? rq.failure().errorText : 'failed' });
    });
    page.on('response', (rs) => {
      if (rs.status() >= 400) failedRequests.push({ url: rs.url(), status: rs.status() });
    });
    page.on('pageerror', (e) => pageErrors.push(String(e && e.message || e)));
    const mediaHost = new URL(url).host;
    let mediaRequests = 0;
    let cmcdRequests = 0;
    page.on('request', (rq) => {
      const u = new URL(rq.url());
      if (u.host !== mediaHost || rq.method() !== 'GET') return;
      mediaRequests++;
      if (u.searchParams.has('CMCD')) cmcdRequests++;
    });
    await page.goto(pageUrl, { waitUntil: 'load', timeout: 10000 });
    if (DASH) await page.evaluate((u) => window.edgePlayDash(u), url);
    else await page.evaluate(([u, o]) => window.edgePlay(u, o), [url, { cmcd: CMCD }]);
    let timedOut = false;
    try {
      await page.waitForFunction((target) => {
        const r = window.edgeResult;
        if (!r) return false;
        if (r.mediaError || r.hlsErrors.some((e) => e.fatal)) return true;
        return document.getElementById('v').currentTime >= target;
      }, TARGET_S, { timeout: TIMEOUT_MS, polling: 100 });
    } catch (e) {
      if (e && e.name === 'TimeoutError') timedOut = true; else throw e;
    }
    const snap = await page.evaluate(() => window.edgeSnapshot());
    if (SHOTS) {
      fs.mkdirSync(SHOTS, { recursive: true });
      const name = url.replace(/^https?:\/\//, '').replace(/[^A-Za-z0-9._-]+/g, '_') + '.png';
      await page.screenshot({ path: path.join(SHOTS, name) });
    }
    const fatal = snap.hlsErrors.filter((e) => e.fatal);
    Object.assign(out, {
      ttffMs: snap.ttffMs,
      fragments: snap.fragments,
      currentTime: Math.round(snap.currentTime * 1000) / 1000,
      video: `${snap.videoWidth}x${snap.videoHeight}`,
      decodedFrames: snap.decodedFrames,
      droppedFrames: snap.droppedFrames,
      levelsLoaded: snap.levelsLoaded,
      levels: snap.levels,
      hlsErrors: snap.hlsErrors,
      failedRequests,
      pageErrors,
      mediaError: snap.mediaError,
      playError: snap.playError,
      hlsVersion: snap.hlsVersion,
      mediaRequests,
      cmcdRequests,
    });
    const reasons = [];
    if (timedOut) reasons.push(`currentTime ${out.currentTime} < ${TARGET_S} after ${TIMEOUT_MS} ms`);
    else if (snap.currentTime < TARGET_S) reasons.push(`stopped at currentTime ${out.currentTime}`);
    if (fatal.length) reasons.push(`${fatal.length} fatal hls.js error(s)`);
    if (snap.mediaError) reasons.push(snap.mediaError);
    if (failedRequests.length) reasons.push(`${failedRequests.length} failed request(s)`);
    if (pageErrors.length) reasons.push(`${pageErrors.length} page error(s)`);
    if (CMCD && (mediaRequests === 0 || cmcdRequests !== mediaRequests)) reasons.push(`${cmcdRequests} of ${mediaRequests} requests carried CMCD`);
    out.ok = reasons.length === 0;
    if (!out.ok) out.reason = reasons.join('; ');
  } catch (e) {
    out.reason = `harness error: ${e && e.message || e}`;
    out.failedRequests = failedRequests;
    out.pageErrors = pageErrors;
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  out.wallMs = Date.now() - started;
  return out;
}

let allOk = true;
for (const url of urls) {
  const r = await playOne(url);
  console.log(JSON.stringify(r));
  if (!r.ok) allOk = false;
}
server.close();
process.exit(allOk ? 0 : 1);
