#!/usr/bin/env node
// Live check: ffmpeg encodes a test pattern live into HLS (1 s segments, a 6-segment window);
// a static origin serves its folder; an edge with tokens required sits in front. hls.js in
// headless Chromium plays the stream through the edge (signed URL) and directly from the
// origin, side by side, for LIVE_SECONDS. Prints one JSON line per player and a summary; exits
// 0 only if both played the whole time with no stall (no `waiting` after the first frame, no
// buffer-stall error), no fatal error and no failed request.
//
// Latency behind live, sampled once a second: hls.js's `latency` (the live edge of the
// playlist it holds, advanced by the time since it was loaded, minus the playback position),
// and "wall latency": the wall clock minus the program date of the frame playing (ffmpeg
// writes #EXT-X-PROGRAM-DATE-TIME when it encodes), which also counts how old the edge's
// playlist is.
//
//   EDGE_BIN=target/release/edge node tests/player/live.mjs
//
// Env: EDGE_BIN (required), CHROMIUM (default /usr/bin/chromium), LIVE_SECONDS (default 60),
//      LIVE_FMP4=1 (CMAF segments instead of MPEG-TS).
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const EDGE_BIN = process.env.EDGE_BIN;
const SECONDS = Number(process.env.LIVE_SECONDS || 60);
const FMP4 = process.env.LIVE_FMP4 === '1';
if (!EDGE_BIN) { console.error('live: EDGE_BIN is required'); process.exit(2); }

const say = (m) => console.error(`live: ${m}`);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-live-'));
const media = path.join(tmp, 'media', 'live');
fs.mkdirSync(media, { recursive: true });
const children = [];
let browser;
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  for (const c of children) { try { c.kill('SIGTERM'); } catch {} }
  await sleep(300);
  for (const c of children) { try { c.kill('SIGKILL'); } catch {} }
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('SIGTERM', async () => { await cleanup(); process.exit(143); });

async function freePort() {
  const s = net.createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const p = s.address().port;
  await new Promise((ok) => s.close(ok));
  return p;
}

// --- the live source --------------------------------------------------------------------
const ff = spawn('ffmpeg', [
  '-hide_banner', '-loglevel', 'error', '-re',
  '-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=25',
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
  '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency',
  '-g', '25', '-keyint_min', '25', '-sc_threshold', '0', '-b:v', '800k',
  '-c:a', 'aac', '-b:a', '64k',
  '-f', 'hls', '-hls_time', '1', '-hls_list_size', '6',
  '-hls_flags', 'delete_segments+temp_file+program_date_time',
  ...(FMP4 ? ['-hls_segment_type', 'fmp4'] : []),
  path.join(media, 'live.m3u8'),
], { stdio: ['ignore', 'ignore', 'inherit'] });
children.push(ff);

// --- the origin: the encoder's folder, no caching headers (the edge's live rule applies) --
const TYPES = { '.m3u8': 'application/vnd.apple.mpegurl', '.ts': 'video/mp2t', '.mp4': 'video/mp4', '.m4s': 'video/mp4' };
const origin = http.createServer((req, res) => {
  const p = new URL(req.url, 'http://x').pathname;
  if (!p.startsWith('/live/') || p.includes('..')) { res.writeHead(404).end(); return; }
  fs.readFile(path.join(tmp, 'media', p), (err, body) => {
    if (err) { res.writeHead(404).end(); return; }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(p)] || 'application/octet-stream',
      'access-control-allow-origin': '*',
    }).end(body);
  });
});
await new Promise((ok) => origin.listen(0, '127.0.0.1', ok));
const originUrl = `http://127.0.0.1:${origin.address().port}`;

// --- the edge -----------------------------------------------------------------------------
const [httpPort, adminPort] = [await freePort(), await freePort()];
const config = path.join(tmp, 'edge.toml');
fs.writeFileSync(config, `[server]
http = "127.0.0.1:${httpPort}"
admin = "127.0.0.1:${adminPort}"
grace_period = "1s"
shutdown_timeout = "2s"
[cache]
dir = "${tmp}/cache"
disk = "64 MiB"
max_object = "8 MiB"
[[origins]]
name = "live"
nodes = [{ addr = "127.0.0.1:${origin.address().port}" }]
[tokens]
required = true
current = "demo"
keys = [{ id = "demo", secret_file = "${root}/certs/demo-token.TEST-KEY.hex" }]
`);
const edge = spawn(EDGE_BIN, ['serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
children.push(edge);
let edgeLog = '';
edge.stderr.on('data', (d) => { edgeLog = (edgeLog + d).slice(-4000); });

let exitCode = 1;
try {
  for (let i = 0; ; i++) {
    if (i > 150) throw new Error('edge not ready after 15 s');
    const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    await sleep(100);
  }
  for (let i = 0; ; i++) {
    if (i > 200) throw new Error('ffmpeg wrote no playlist with 3 segments in 20 s');
    const text = fs.existsSync(path.join(media, 'live.m3u8')) ? fs.readFileSync(path.join(media, 'live.m3u8'), 'utf8') : '';
    if ((text.match(/#EXTINF/g) || []).length >= 3) break;
    await sleep(100);
  }
  const signed = execFileSync(EDGE_BIN, ['sign', '--config', config, '--acl', '/live/', '--ttl', '2h',
    '--style', 'query', `http://127.0.0.1:${httpPort}/live/live.m3u8`]).toString().trim();
  const unsigned = await fetch(`http://127.0.0.1:${httpPort}/live/live.m3u8`).then((r) => r.status);
  if (unsigned !== 403) throw new Error(`an unsigned request was answered ${unsigned}, want 403`);

  // --- the players ------------------------------------------------------------------------
  const pages = http.createServer((req, res) => {
    // Every script page.html loads (hls.js, and dash.js for play.mjs's DASH check): a 404 is
    // a failed request, which fails the run.
    const files = {
      '/page.html': ['page.html', 'text/html'],
      '/hls.min.js': ['node_modules/hls.js/dist/hls.min.js', 'text/javascript'],
      '/dash.all.min.js': ['node_modules/dashjs/dist/modern/umd/dash.all.min.js', 'text/javascript'],
    };
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': f[1] }).end(fs.readFileSync(path.join(here, f[0])));
  });
  await new Promise((ok) => pages.listen(0, '127.0.0.1', ok));
  const pageUrl = `http://127.0.0.1:${pages.address().port}/page.html`;
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required',
      '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=localhost;127.0.0.1;127.*'],
  });
  const players = [['edge', signed], ['origin', `${originUrl}/live/live.m3u8`]];
  const runs = await Promise.all(players.map(async ([name, url]) => {
    const page = await browser.newPage();
    const failed = [];
    page.on('response', (rs) => { if (rs.status() >= 400) failed.push(`${rs.status()} ${rs.url()}`); });
    page.on('requestfailed', (rq) => failed.push(`failed ${rq.url()}`));
    await page.goto(pageUrl, { waitUntil: 'load' });
    await page.evaluate((u) => window.edgePlay(u, { live: true }), url);
    return { name, url, page, failed };
  }));
  const samples = Object.fromEntries(runs.map((r) => [r.name, []]));
  const started = Date.now();
  while (Date.now() - started < SECONDS * 1000) {
    await sleep(1000);
    for (const r of runs) {
      const s = await r.page.evaluate(() => window.edgeLive());
      if (s.playing) samples[r.name].push(s);
    }
  }
  const results = [];
  for (const r of runs) {
    const s = await r.page.evaluate(() => window.edgeSnapshot());
    const live = await r.page.evaluate(() => window.edgeLive());
    const lat = samples[r.name].map((x) => x.latency).filter((x) => x != null);
    const wall = samples[r.name].map((x) => x.wallLatency).filter((x) => x != null);
    const stat = (xs) => xs.length ? {
      mean: +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2),
      max: +Math.max(...xs).toFixed(2), min: +Math.min(...xs).toFixed(2),
    } : null;
    const out = {
      player: r.name, seconds: SECONDS, played: Math.round((s.currentTime - (live.startPosition || 0)) * 100) / 100,
      ttffMs: s.ttffMs, fragments: s.fragments, stalls: live.stalls, bufferStalls: live.bufferStalls,
      latency: stat(lat), wallLatency: stat(wall), targetLatency: live.targetLatency,
      fatal: s.hlsErrors.filter((e) => e.fatal), errors: s.hlsErrors.length, failed: r.failed.slice(0, 5),
    };
    const reasons = [];
    if (out.played < SECONDS - 10) reasons.push(`played only ${out.played.toFixed(1)} s of ${SECONDS}`);
    if (live.stalls || live.bufferStalls) reasons.push(`${live.stalls} stall(s), ${live.bufferStalls} buffer stall error(s)`);
    if (out.fatal.length) reasons.push('fatal hls.js error');
    if (r.failed.length) reasons.push(`${r.failed.length} failed request(s)`);
    out.ok = reasons.length === 0;
    if (!out.ok) out.reason = reasons.join('; ');
    console.log(JSON.stringify(out));
    results.push(out);
  }
  const [e, o] = results;
  if (e.wallLatency && o.wallLatency) {
    say(`latency behind live over ${SECONDS} s: edge ${e.wallLatency.mean} s (max ${e.wallLatency.max}), ` +
      `origin ${o.wallLatency.mean} s (max ${o.wallLatency.max}); hls.js latency edge ${e.latency && e.latency.mean} s, origin ${o.latency && o.latency.mean} s`);
  }
  exitCode = results.every((r) => r.ok) ? 0 : 1;
  pages.close();
} catch (err) {
  say(`error: ${err && err.message || err}`);
  say(`edge log: ${edgeLog}`);
}
origin.close();
await cleanup();
process.exit(exitCode);
