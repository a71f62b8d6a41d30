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
import path from 'node:path';
import { Harness, sleep, startEdge, startBrowser, openPlayer, stat } from './harness.mjs';

const EDGE_BIN = process.env.EDGE_BIN;
const SECONDS = Number(process.env.LIVE_SECONDS || 60);
const FMP4 = process.env.LIVE_FMP4 === '1';
if (!EDGE_BIN) { console.error('live: EDGE_BIN is required'); process.exit(2); }

const h = new Harness('live');
const say = (m) => h.say(m);
const tmp = h.tmp;
const media = path.join(tmp, 'media', 'live');
fs.mkdirSync(media, { recursive: true });

// --- the live source --------------------------------------------------------------------
h.spawn('ffmpeg', [
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
h.servers.push(origin);
const originUrl = `http://127.0.0.1:${origin.address().port}`;

let exitCode = 1;
let edge;
try {
  edge = await startEdge(h, EDGE_BIN, {
    dir: 'edge', originHost: `127.0.0.1:${origin.address().port}`, acl: '/live/', path: '/live/live.m3u8', pool: 'live',
  });
  for (let i = 0; ; i++) {
    if (i > 200) throw new Error('ffmpeg wrote no playlist with 3 segments in 20 s');
    const text = fs.existsSync(path.join(media, 'live.m3u8')) ? fs.readFileSync(path.join(media, 'live.m3u8'), 'utf8') : '';
    if ((text.match(/#EXTINF/g) || []).length >= 3) break;
    await sleep(100);
  }
  const signed = edge.signed;
  const unsigned = await fetch(`http://127.0.0.1:${edge.httpPort}/live/live.m3u8`).then((r) => r.status);
  if (unsigned !== 403) throw new Error(`an unsigned request was answered ${unsigned}, want 403`);

  // --- the players ------------------------------------------------------------------------
  const pageUrl = await startBrowser(h);
  const players = [['edge', signed], ['origin', `${originUrl}/live/live.m3u8`]];
  const runs = await Promise.all(players.map(([name, url]) => openPlayer(h, pageUrl, name, url, { live: true })));
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
} catch (err) {
  say(`error: ${err && err.message || err}`);
  if (edge) say(`edge log: ${edge.log}`);
}
await h.cleanup();
process.exit(exitCode);
