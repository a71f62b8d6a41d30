#!/usr/bin/env node
// Low-latency check (issue #16, must-hold 5 and 2): Low-Latency HLS played by hls.js
// (`lowLatencyMode`) through two edges and straight from the origin, for LL_SECONDS.
//
// The origin (llorigin.mjs) releases decodable fMP4 parts (333 ms) on the wall clock (placed
// so that a blocking answer crosses a whole second every segment: `edgeOfSecond`), with
// blocking playlist reloads and preload hints; it has one listener per edge and one for the
// direct player, and counts what each is asked. Two edges (tokens required) sit in front of
// it. 20 players: three hls.js players in headless Chromium (one on each edge with a signed
// URL, one on the origin), and 17 light LL-HLS clients in this process (9 on edge A, 8 on
// edge B) that do what a low-latency player does on the wire: block on the next part
// (`_HLS_msn`/`_HLS_part`) and fetch every new part, checking its bytes; one more on the
// origin gives the reference for how late a blocking answer arrives (`blockingDelayMs`: from
// the part's completion to the playlist's arrival).
//
// It holds, else exits 1:
// - every hls.js player plays the whole time with no stall, no fatal error, no failed request;
// - latency behind live (wall clock minus the program date of the frame playing) through
//   each edge is under 5 s on average and within 0.5 s of playing from the origin;
// - each edge asks the origin once per part, segment and init segment, and once per blocking
//   playlist step (each distinct `_HLS_msn`/`_HLS_part`), however many players wait on it,
//   for as long as it should hold the answer (a part 3 target durations, a blocking answer 6);
// - the players on the two edges converge: the two hls.js players' latencies within 1 s of
//   each other at the end; the newest parts the light clients on both edges know, sampled
//   every second, a median of at most one segment apart.
//
//   EDGE_BIN=target/debug/edge node tests/player/lowlatency.mjs
//
// Env: EDGE_BIN (required), CHROMIUM (default /usr/bin/chromium), LL_SECONDS (default 60),
//      LL_START_BUFFER (seconds buffered before hls.js starts playing, default 1: starting at
//      the first frame, two parts deep, every player stalled at its first segment boundary).
import fs from 'node:fs';
import os from 'node:os';
import { Harness, sleep, startEdge, startBrowser, openPlayer, stat } from './harness.mjs';
import { startLlOrigin, PARTS, PART, TARGET } from './llorigin.mjs';

const EDGE_BIN = process.env.EDGE_BIN;
const SECONDS = Number(process.env.LL_SECONDS || 60);
const START_BUFFER = Number(process.env.LL_START_BUFFER || 1);
const LIGHT = { a: 9, b: 8, direct: 1 };
if (!EDGE_BIN) { console.error('lowlatency: EDGE_BIN is required'); process.exit(2); }

const h = new Harness('lowlatency');
const say = (m) => h.say(m);
let origin;

// The last part a playlist lists: [msn, part], or null.
function lastPart(text) {
  let msn = Number((/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text) || [])[1] || 0);
  let last = null, p = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-PART:')) { last = [msn, p]; p++; }
    else if (line && !line.startsWith('#')) { msn++; p = 0; }
  }
  return last;
}

// A light LL-HLS client: blocks on the part after the newest it knows, fetches every new part
// (checking its bytes against the origin's), until `until`.
async function lightClient(signed, until, st) {
  Object.assign(st, { parts: 0, steps: 0, errors: [], newest: null, delays: [] });
  const base = new URL(signed);
  let text = await fetch(base).then((r) => r.text());
  let next = null;
  while (Date.now() < until && st.errors.length < 5) {
    const last = lastPart(text);
    if (!last) { st.errors.push('a playlist without parts'); break; }
    const [m, p] = last;
    // Fetch what is new since the last playlist: every part listed after `next`'s predecessor.
    const listed = [];
    let msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)[1]), idx = 0;
    for (const line of text.split('\n')) {
      const uri = /^#EXT-X-PART:.*URI="([^"]+)"/.exec(line);
      if (uri) { listed.push([msn, idx, uri[1]]); idx++; }
      else if (line && !line.startsWith('#')) { msn++; idx = 0; }
    }
    const fresh = next ? listed.filter(([a, b]) => a > next[0] || (a === next[0] && b >= next[1])) : listed.slice(-1);
    for (const [a, b, uri] of fresh) {
      const r = await fetch(new URL(uri, base));
      const body = Buffer.from(await r.arrayBuffer());
      if (r.status !== 200 || !body.equals(origin.part(a, b))) st.errors.push(`part ${a}.${b}: ${r.status}, ${body.length} bytes`);
      st.parts++;
    }
    st.newest = [m, p];
    next = p + 1 < PARTS ? [m, p + 1] : [m + 1, 0];
    const u = new URL(base);
    u.searchParams.set('_HLS_msn', next[0]);
    u.searchParams.set('_HLS_part', next[1]);
    const r = await fetch(u);
    text = await r.text();
    if (r.status !== 200) { st.errors.push(`blocking reload ${next}: ${r.status}`); await sleep(200); continue; }
    st.steps++;
    // A blocking answer is made when its part is: `Age` 1 or more on it would tell a player
    // (hls.js's CDN tune-in) it is a second behind live.
    if (Number(r.headers.get('age') || 0) >= 1) st.aged = (st.aged || 0) + 1;
    st.ages = st.ages || {};
    st.ages[r.headers.get('age')] = (st.ages[r.headers.get('age')] || 0) + 1;
    // How long after the part was complete its playlist arrived.
    st.delays.push(Date.now() - origin.completeAt(next[0], Math.min(next[1], PARTS - 1)));
  }
  return st;
}

// What an edge asked of the origin (`answers`: every finished origin request), apart from
// plain playlist reloads, by target (the query's parameters sorted: order does not make
// another step). A target asked for again while the edge should still hold the first answer
// is a repeat: within 6 target durations of a blocking step's answer (its lifetime at the
// edge), 3 of a part's (its part lifetime), ever for a segment or the init segment. Asked for
// again later (a player that fell behind), it is an expiry, as it should be.
function repeated(answers) {
  const byKey = new Map();
  for (const a of answers) {
    const u = new URL(a.url, 'http://x');
    if (u.pathname === '/ll/p.m3u8' && !u.search) continue;
    const q = [...u.searchParams].sort().map(([k, v]) => `${k}=${v}`).join('&');
    const key = u.pathname + (q ? `?${q}` : '');
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(a);
  }
  const lifetime = (key) => key.includes('_HLS_msn') ? 6 * TARGET * 1000
    : /\/s\d+\.\d+\.m4s$/.test(key) ? 3 * TARGET * 1000 : Infinity;
  const repeats = [];
  let expired = 0;
  for (const [key, list] of byKey) {
    list.sort((x, y) => x.at - y.at);
    for (let i = 1; i < list.length; i++) {
      // Kept from when its answer ended (a little slack for the edge's own clock).
      const kept = list[i - 1].at + list[i - 1].ms + lifetime(key) - 250;
      if (list[i].at < kept) repeats.push([key, list.slice(i - 1, i + 1)]);
      else expired++;
    }
  }
  const keys = [...byKey.keys()];
  return { distinct: keys.length, blocking: keys.filter((k) => k.includes('_HLS_msn')).length,
    parts: keys.filter((k) => /\/s\d+\.\d+\.m4s$/.test(k)).length, repeated: repeats, expired };
}

let exitCode = 1;
try {
  origin = await startLlOrigin({ seconds: SECONDS + 20, ports: ['a', 'b', 'direct'], edgeOfSecond: true });
  const launch = (dir) => startEdge(h, EDGE_BIN, {
    dir, originHost: new URL(origin.urls[dir]).host, acl: '/ll/', path: '/ll/p.m3u8', pool: 'll',
  });
  const edges = { a: await launch('a'), b: await launch('b') };
  const unsigned = await fetch(`http://127.0.0.1:${edges.a.httpPort}/ll/p.m3u8`).then((r) => r.status);
  if (unsigned !== 403) throw new Error(`an unsigned request was answered ${unsigned}, want 403`);
  const pageUrl = await startBrowser(h);
  const t0 = Date.now();
  const players = [['edge-a', edges.a.signed], ['edge-b', edges.b.signed], ['origin', `${origin.urls.direct}/ll/p.m3u8`]];
  const runs = await Promise.all(players.map(([name, url]) =>
    openPlayer(h, pageUrl, name, url, { live: true, lowLatency: true, startBuffer: START_BUFFER }, t0)));
  const started = Date.now();
  const until = started + SECONDS * 1000;
  const clients = Object.entries(LIGHT).flatMap(([e, n]) => Array.from({ length: n }, () => ({ edge: e })));
  const light = Promise.all(clients.map((c) =>
    lightClient(c.edge === 'direct' ? `${origin.urls.direct}/ll/p.m3u8` : edges[c.edge].signed, until, c)));
  // Every second: how far apart the light clients on the edges are (newest part known).
  const spreads = [];
  const samples = Object.fromEntries(runs.map((r) => [r.name, []]));
  while (Date.now() < until) {
    await sleep(1000);
    for (const r of runs) {
      const s = await r.page.evaluate(() => window.edgeLive());
      if (s.playing) samples[r.name].push(s);
    }
    const newest = clients.filter((c) => c.edge !== 'direct' && c.newest).map((c) => c.newest[0] * PARTS + c.newest[1]);
    if (newest.length) spreads.push(Math.max(...newest) - Math.min(...newest));
  }
  await light;
  const reasons = [];
  const results = {};
  for (const r of runs) {
    const s = await r.page.evaluate(() => window.edgeSnapshot());
    const live = await r.page.evaluate(() => window.edgeLive());
    const wall = samples[r.name].map((x) => x.wallLatency).filter((x) => x != null);
    const out = {
      player: r.name, seconds: SECONDS, played: Math.round((s.currentTime - (live.startPosition || 0)) * 100) / 100,
      ttffMs: s.ttffMs, fragments: s.fragments, stalls: live.stalls, bufferStalls: live.bufferStalls,
      wallLatency: stat(wall), latency: stat(samples[r.name].map((x) => x.latency).filter((x) => x != null)),
      targetLatency: live.targetLatency, lastWallLatency: live.wallLatency,
      fatal: s.hlsErrors.filter((e) => e.fatal), errors: s.hlsErrors.length, errorList: s.hlsErrors.slice(0, 6).map((e) => `${e.details} ${e.url || ''} ${e.reason || ''}`), failed: r.failed.slice(0, 5),
    };
    console.log(JSON.stringify(out));
    results[r.name] = out;
    if (out.played < SECONDS - 10) reasons.push(`${r.name} played only ${out.played.toFixed(1)} s of ${SECONDS}`);
    if (live.stalls || live.bufferStalls) reasons.push(`${r.name}: ${live.stalls} stall(s), ${live.bufferStalls} buffer stall error(s)`);
    if (out.fatal.length) reasons.push(`${r.name}: fatal hls.js error`);
    if (r.failed.length) reasons.push(`${r.name}: ${r.failed.length} failed request(s)`);
    // What the edge's access log says of a playlist request that failed or timed out.
    const edge = { 'edge-a': edges.a, 'edge-b': edges.b }[r.name];
    const late = [...r.failed, ...out.errorList].map((f) => /_HLS_msn=\d+&_HLS_part=\d+/.exec(f)).filter(Boolean);
    if (edge && late.length && fs.existsSync(edge.access)) {
      const lines = fs.readFileSync(edge.access, 'utf8').split('\n');
      for (const m of late.slice(0, 2)) say(`${r.name}'s access log for ${m[0]}:\n${lines.filter((l) => l.includes(m[0])).slice(0, 20).join('\n')}`);
    }
    if (!out.wallLatency) reasons.push(`${r.name}: no latency sample`);
  }
  const o = results.origin.wallLatency;
  for (const e of ['edge-a', 'edge-b']) {
    const l = results[e].wallLatency;
    if (l && l.mean >= 5) reasons.push(`${e}: latency behind live ${l.mean} s, want < 5 s`);
    if (l && o && l.mean - o.mean > 0.5) reasons.push(`${e}: latency ${l.mean} s, more than 0.5 s behind the origin's ${o.mean} s`);
  }
  // Convergence: the two edges' hls.js players at the end, and every light client's newest part.
  const [la, lb] = [results['edge-a'].lastWallLatency, results['edge-b'].lastWallLatency];
  const apart = la != null && lb != null ? Math.abs(la - lb) : null;
  if (apart === null || apart > 1) reasons.push(`the hls.js players on the two edges ended ${apart} s apart, want <= 1 s`);
  // The light clients on both edges know the same media sequence: the spread of their newest
  // parts, sampled every second, is at most one segment half the time or more.
  const sorted = [...spreads].sort((x, y) => x - y);
  const spread = sorted.length ? sorted[sorted.length >> 1] : null;
  if (spread === null || spread > PARTS) reasons.push(`the light clients' newest parts were a median ${spread} parts apart, want <= ${PARTS}`);
  for (const c of clients) if (c.errors.length) reasons.push(`a light client on edge ${c.edge}: ${c.errors.slice(0, 3).join('; ')}`);
  // Blocking answers with `Age` >= 1 (a player that asked late may get a cached one; not many).
  const aged = clients.reduce((a, c) => a + (c.aged || 0), 0);
  const stepsTotal = clients.reduce((a, c) => a + c.steps, 0);
  if (aged > stepsTotal / 100) reasons.push(`${aged} of ${stepsTotal} blocking answers carried Age >= 1, want <= 1 %`);
  const lightSummary = {
    clients: clients.length, parts: clients.reduce((a, c) => a + c.parts, 0), steps: stepsTotal, agedAnswers: aged, ages: clients.reduce((a, c) => { for (const [k, v] of Object.entries(c.ages || {})) a[k] = (a[k] || 0) + v; return a; }, {}),
    newestSpreadParts: { median: spread, max: sorted[sorted.length - 1] }, hlsjsApartS: apart && +apart.toFixed(2),
  };
  console.log(JSON.stringify({ light: lightSummary }));
  for (const e of Object.keys(LIGHT)) {
    const d = clients.filter((c) => c.edge === e).flatMap((c) => c.delays).sort((x, y) => x - y);
    console.log(JSON.stringify({ blockingDelayMs: e, n: d.length, median: d[d.length >> 1], p95: d[Math.floor(d.length * 0.95)], max: d[d.length - 1] }));
  }
  // One origin request per part, segment and blocking step, per edge.
  for (const e of ['a', 'b']) {
    const rep = repeated(origin.answers[e]);
    console.log(JSON.stringify({ originRequests: e, total: origin.requests[e].length, distinct: rep.distinct,
      parts: rep.parts, blockingSteps: rep.blocking, expiredRefetches: rep.expired, repeated: rep.repeated.slice(0, 3) }));
    // What the edge's access log says of the requests for a repeated target.
    for (const [t] of rep.repeated.slice(0, 2)) {
      const lines = fs.existsSync(edges[e].access) ? fs.readFileSync(edges[e].access, 'utf8').split('\n') : [];
      const p = t.split('?')[0];
      say(`edge ${e}'s access log for ${p}:\n${lines.filter((l) => l.includes(`"${p}`) || l.includes(`${p}?`)).slice(0, 30).join('\n')}`);
    }
    if (rep.repeated.length) reasons.push(`edge ${e} asked the origin again for what it should still hold: ${rep.repeated.slice(0, 3).map(([t]) => t).join(', ')}`);
    if (rep.parts < (SECONDS / PART) / 2) reasons.push(`edge ${e} fetched only ${rep.parts} parts in ${SECONDS} s`);
  }
  const [ea, eb] = [results['edge-a'].wallLatency, results['edge-b'].wallLatency];
  if (ea && eb && o) {
    say(`latency behind live over ${SECONDS} s: edge A ${ea.mean} s (max ${ea.max}), edge B ${eb.mean} s (max ${eb.max}), ` +
      `origin ${o.mean} s (max ${o.max}); ${lightSummary.clients} light clients fetched ${lightSummary.parts} parts in ${lightSummary.steps} blocking steps`);
  }
  say(`load average during the run: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
  if (reasons.length) say(`FAILED: ${reasons.join('; ')}`);
  exitCode = reasons.length ? 1 : 0;
} catch (err) {
  say(`error: ${err && err.stack || err}`);
}
if (origin) origin.close();
await h.cleanup();
process.exit(exitCode);
