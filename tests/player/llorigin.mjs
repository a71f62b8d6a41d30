// A Low-Latency HLS origin (RFC 8216bis) with decodable media, for the low-latency player
// check (lowlatency.mjs).
//
// The media is encoded once, at start, by ffmpeg: a 320x180 test pattern at 30 fps, H.264 with
// a keyframe every 30 frames (1 s), as fragmented MP4 with one fragment (moof + mdat) per
// frame. The file is split at its moof boundaries: the boxes before the first moof are the
// init segment, every 10 frames are a part (333 ms), every 3 parts a segment (1 s, starting
// at a keyframe: its first part is INDEPENDENT=YES). A segment is the bytes of its parts.
//
// The origin releases the media on the wall clock as if it were encoded live, frame by frame:
// part g is complete at `start + (g + 1) × PART`; `start` lies `preroll` segments in the
// past, so a playlist exists at once. Its media playlist `/ll/p.m3u8` has PART-TARGET,
// CAN-BLOCK-RELOAD with PART-HOLD-BACK (6 part targets, 2 s), #EXT-X-PROGRAM-DATE-TIME on every
// segment (the wall-clock time its first frame was "captured", so a player's playing date
// gives its latency behind live), the parts of the last 3 segments and the current one, and
// a PRELOAD-HINT for the part being produced. It holds `_HLS_msn`/`_HLS_part` requests until
// the playlist has that part (400 for an msn more than two segments ahead, 503 after three
// target durations), and streams a part or segment still being produced frame by frame as
// its frames are "captured" (Content-Length known up front). No caching headers: the edge's
// own policy decides. Once the media runs out the playlist ends (#EXT-X-ENDLIST).
//
// Each listener (`ports` names them) counts the requests it gets, so a test can tell what
// each edge asked of the origin.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

export const FPS = 30;
export const PART_FRAMES = 10;
export const PARTS = 3; // per segment
export const PART = PART_FRAMES / FPS; // seconds
export const SEGMENT = PART * PARTS;
export const TARGET = Math.ceil(SEGMENT);
// PART-TARGET: no part may be longer (RFC 8216bis §4.4.3.7), rounded up to the millisecond.
export const PART_TARGET = Math.ceil(PART * 1000) / 1000;
// PART-HOLD-BACK, what hls.js aims at in lowLatencyMode: 6 part targets (2 s). RFC 8216bis asks
// for at least 3; 6 leave a player on a loaded 2-core test machine room for a late part.
export const HOLD_BACK = 6 * PART_TARGET;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, Math.max(0, ms)));

// Top-level ISO BMFF boxes of a buffer: [{ type, start, end }].
function boxes(buf) {
  const out = [];
  for (let at = 0; at + 8 <= buf.length;) {
    let size = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    if (size === 1) size = Number(buf.readBigUInt64BE(at + 8));
    if (size === 0) size = buf.length - at;
    if (size < 8 || at + size > buf.length) throw new Error(`bad box ${type} at ${at}`);
    out.push({ type, start: at, end: at + size });
    at += size;
  }
  return out;
}

// Encode `seconds` of media; returns { init, frames: [Buffer] } (one moof+mdat per frame).
export function encode(seconds, dir) {
  const file = path.join(dir, 'll.mp4');
  execFileSync('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc=size=320x180:rate=${FPS}`,
    '-t', String(Math.ceil(seconds)),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-g', String(FPS * SEGMENT), '-keyint_min', String(FPS * SEGMENT), '-sc_threshold', '0',
    '-bf', '0', '-b:v', '300k',
    '-movflags', '+frag_every_frame+empty_moov+default_base_moof',
    '-f', 'mp4', file,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  const buf = fs.readFileSync(file);
  const list = boxes(buf);
  const first = list.findIndex((b) => b.type === 'moof');
  if (first < 0) throw new Error('ffmpeg wrote no moof');
  const init = buf.subarray(0, list[first].start);
  const frames = [];
  for (let i = first; i < list.length; i++) {
    if (list[i].type !== 'moof') continue;
    const mdat = list[i + 1];
    if (!mdat || mdat.type !== 'mdat') throw new Error('a moof without its mdat');
    frames.push(buf.subarray(list[i].start, mdat.end));
  }
  return { init, frames };
}

function param(query, name) {
  const v = new URLSearchParams(query).get(name);
  return v === null ? null : v;
}

// Start the origin: `seconds` of media (past the preroll), one listener per name in `ports`.
// Returns { urls: {name: base URL}, requests: {name: [target]} (as they arrive), answers:
// {name: [{url, method, range, at (ms since the stream's start), status, ms, complete}]}
// (as they end), partsProduced(), close(), ... }.
// `edgeOfSecond`: place the stream on the wall clock so that the second part of every segment
// completes 5 ms before a whole second, so its blocking answer arrives (through an edge) in
// the second after its `Date`. An edge that takes `Date`'s whole seconds for age then sends
// `Age: 1` on that answer at once (issue #16's intermittent failure; see README "Live and low
// latency"). Off: wherever the start falls.
export async function startLlOrigin({ seconds, ports = ['direct'], preroll = 4, edgeOfSecond = false }) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-llorigin-'));
  let media;
  try {
    media = encode(seconds + preroll * SEGMENT + 5, tmp);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const totalParts = Math.floor(media.frames.length / PART_FRAMES);
  const totalSegments = Math.floor(totalParts / PARTS);
  let start = Date.now() - preroll * SEGMENT * 1000;
  if (edgeOfSecond) {
    // Part 1 of segment n completes at start + n s + 2 × PART: at 995 ms into a second.
    const want = (995 - 2 * PART * 1000 + 1000) % 1000;
    start -= ((start - want) % 1000 + 1000) % 1000;
  }
  const frameAt = (f) => start + (f + 1) * 1000 / FPS; // when frame f is "captured" (complete)
  const partAt = (g) => frameAt((g + 1) * PART_FRAMES - 1);
  const produced = () => Math.min(totalParts,
    Math.max(0, Math.floor((Date.now() - start) / (PART * 1000)))); // complete parts
  const pdt = (msn) => new Date(start + msn * SEGMENT * 1000).toISOString();

  function playlist(n) {
    const current = Math.floor(n / PARTS), done = n % PARTS;
    const ended = n >= totalSegments * PARTS;
    const first = Math.max(0, current - 6);
    const lines = ['#EXTM3U', '#EXT-X-VERSION:9', `#EXT-X-TARGETDURATION:${TARGET}`,
      `#EXT-X-PART-INF:PART-TARGET=${PART_TARGET}`,
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${HOLD_BACK.toFixed(3)}`,
      `#EXT-X-MEDIA-SEQUENCE:${first}`, '#EXT-X-MAP:URI="init.mp4"'];
    const partLine = (m, p) => `#EXT-X-PART:DURATION=${PART.toFixed(5)},URI="s${m}.${p}.m4s"${p === 0 ? ',INDEPENDENT=YES' : ''}`;
    for (let m = first; m < current; m++) {
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${pdt(m)}`);
      if (m + 3 >= current) for (let p = 0; p < PARTS; p++) lines.push(partLine(m, p));
      lines.push(`#EXTINF:${SEGMENT.toFixed(5)},`, `s${m}.m4s`);
    }
    if (ended) {
      lines.push('#EXT-X-ENDLIST');
    } else {
      if (done > 0) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${pdt(current)}`);
      for (let p = 0; p < done; p++) lines.push(partLine(current, p));
      lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s${current}.${done}.m4s"`);
    }
    return lines.join('\n') + '\n';
  }

  // Parts from..=to (counted from the start) as one body, each frame sent once captured.
  async function stream(res, from, to) {
    if (from >= totalParts || to >= totalParts || from > produced()) { res.writeHead(404).end(); return; }
    const frames = media.frames.slice(from * PART_FRAMES, (to + 1) * PART_FRAMES);
    const length = frames.reduce((a, f) => a + f.length, 0);
    res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': length, 'access-control-allow-origin': '*' });
    for (let i = 0; i < frames.length; i++) {
      await sleep(frameAt(from * PART_FRAMES + i) - Date.now());
      if (res.destroyed) return;
      res.write(frames[i]);
    }
    res.end();
  }

  async function answer(req, res) {
    const url = new URL(req.url, 'http://x');
    const name = url.pathname.startsWith('/ll/') ? url.pathname.slice(4) : null;
    const cors = { 'access-control-allow-origin': '*' };
    if (name === 'p.m3u8') {
      const msn = param(url.search, '_HLS_msn'), part = param(url.search, '_HLS_part');
      if (part !== null && msn === null) { res.writeHead(400, cors).end(); return; }
      if (msn !== null) {
        const m = Number(msn), p = part === null ? null : Number(part);
        if (!Number.isInteger(m) || m < 0 || (p !== null && (!Number.isInteger(p) || p < 0))) { res.writeHead(400, cors).end(); return; }
        if (m > Math.floor(produced() / PARTS) + 2) { res.writeHead(400, cors).end(); return; }
        // The part count the playlist must reach (a part past the last of segment m is the
        // first of the next).
        const need = p === null ? (m + 1) * PARTS : p < PARTS ? m * PARTS + p + 1 : (m + 1) * PARTS + 1;
        const limit = Date.now() + 3 * TARGET * 1000;
        const at = need > totalParts ? Date.now() : partAt(need - 1);
        if (at > limit) { await sleep(limit - Date.now()); res.writeHead(503, cors).end(); return; }
        // Timers may fire a little early: wait until the part is really there (a blocking
        // answer without it would be kept by a cache and make its players spin).
        await sleep(at - Date.now());
        while (produced() < Math.min(need, totalParts)) await sleep(2);
      }
      const body = playlist(produced());
      res.writeHead(200, { ...cors, 'content-type': 'application/vnd.apple.mpegurl', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (name === 'init.mp4') {
      res.writeHead(200, { ...cors, 'content-type': 'video/mp4', 'content-length': media.init.length }).end(media.init);
      return;
    }
    let m;
    if (name && (m = /^s(\d+)\.(\d+)\.m4s$/.exec(name)) && Number(m[2]) < PARTS) {
      const g = Number(m[1]) * PARTS + Number(m[2]);
      await stream(res, g, g);
      return;
    }
    if (name && (m = /^s(\d+)\.m4s$/.exec(name))) {
      await stream(res, Number(m[1]) * PARTS, Number(m[1]) * PARTS + PARTS - 1);
      return;
    }
    res.writeHead(404, cors).end();
  }

  const requests = {}, answers = {}, urls = {}, servers = [];
  for (const name of ports) {
    requests[name] = [];
    answers[name] = [];
    const server = http.createServer((req, res) => {
      requests[name].push(req.url);
      const t0 = Date.now();
      res.on('close', () => answers[name].push({ url: req.url, method: req.method, range: req.headers.range,
        at: t0 - start, status: res.statusCode, ms: Date.now() - t0, complete: res.writableFinished }));
      answer(req, res).catch(() => res.destroy());
    });
    server.keepAliveTimeout = 30_000;
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    urls[name] = `http://127.0.0.1:${server.address().port}`;
    servers.push(server);
  }
  return {
    urls, requests, answers, totalParts, partsProduced: produced, playlist: () => playlist(produced()),
    // When part p of segment msn is complete (ms since the epoch).
    completeAt: (msn, p) => partAt(msn * PARTS + p),
    // The bytes of part p of segment msn, as served.
    part: (msn, p) => Buffer.concat(media.frames.slice((msn * PARTS + p) * PART_FRAMES, (msn * PARTS + p + 1) * PART_FRAMES)),
    close: () => { for (const s of servers) { s.closeAllConnections(); s.close(); } },
  };
}

// Run on its own: serve for a while and print the URL (to play with a player by hand).
if (import.meta.url === `file://${process.argv[1]}`) {
  const o = await startLlOrigin({ seconds: Number(process.env.LL_SECONDS || 120) });
  console.log(`${o.urls.direct}/ll/p.m3u8`);
}
