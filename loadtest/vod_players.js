// VOD players: PLAYERS simulated HLS players, each playing sessions back to back for DURATION.
// A session fetches the master playlist, picks a rendition, fetches its media playlist (and
// its EXT-X-MAP init segment), then the segments in order, paced like a real player: it
// prebuffers PREBUFFER segments, then keeps at most MAX_BUFFER_S seconds of media buffered,
// sleeping (think time) while the buffer is full. A simple playback model counts startup
// time and rebuffering (a segment arriving after the playhead ran out of media).
//
//   k6 run vod_players.js                      # the edge's demo title, 10 players, 60 s
//   k6 run -e URL=http://127.0.0.1:18082/vod/master.m3u8 -e PLAYERS=100 -e DURATION=2m vod_players.js
//
//   URL           master (or media) playlist (default http://127.0.0.1:8080/demo/ts/master.m3u8)
//   PLAYERS=10 DURATION=60s
//   RENDITION     random | lowest | highest | <index in the master> (default random)
//   PREBUFFER=2   segments downloaded before playback starts
//   MAX_BUFFER_S=12  buffered media (seconds) above which the player waits
//   SPEED=1       playback speed factor (e.g. 4 = think times / 4, for quicker runs)
//   MAX_SEGMENTS=0   stop a session after this many segments (0 = whole title)
import http from 'k6/http';
import { sleep } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { env, envInt, envFloat, account, assertLoopback, summarize, TREND_STATS } from './lib.js';

const URL = env('URL', 'http://127.0.0.1:8080/demo/ts/master.m3u8');
assertLoopback(URL);
const RENDITION = env('RENDITION', 'random');
const PREBUFFER = Math.max(1, envInt('PREBUFFER', 2));
const MAX_BUFFER_S = envFloat('MAX_BUFFER_S', 12);
const SPEED = Math.max(0.01, envFloat('SPEED', 1));
const MAX_SEGMENTS = envInt('MAX_SEGMENTS', 0);

const startup = new Trend('vod_startup_ms', true);
const segTime = new Trend('vod_segment_ms', true);
const stallTime = new Trend('vod_stall_ms', true);
const rebuffers = new Counter('vod_rebuffers');
const sessions = new Counter('vod_sessions_completed');
const failures = new Counter('vod_session_failures');
const segments = new Counter('vod_segments');

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  scenarios: {
    vod: { executor: 'constant-vus', vus: envInt('PLAYERS', 10), duration: env('DURATION', '60s'), gracefulStop: '10s' },
  },
};

// Resolve a playlist URI against the playlist's URL (absolute, host-relative, or relative).
export function resolve(base, uri) {
  if (/^https?:\/\//i.test(uri)) return uri;
  const m = base.match(/^(https?:\/\/[^/]+)(\/[^?#]*)?/i);
  const origin = m[1];
  if (uri.startsWith('/')) return origin + uri;
  const dir = (m[2] || '/').replace(/[^/]*$/, '');
  const parts = (dir + uri).split('/');
  const out = [];
  for (const p of parts) {
    if (p === '..') out.pop();
    else if (p !== '.') out.push(p);
  }
  return origin + out.join('/');
}

function attr(line, name) {
  const m = line.match(new RegExp(`(?:^|[,:])${name}=("([^"]*)"|[^,]*)`));
  return m ? (m[2] !== undefined ? m[2] : m[1]) : undefined;
}

// Master playlist -> [{bandwidth, uri}], or null when `text` is a media playlist.
export function parseMaster(text, base) {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  const variants = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('#EXT-X-STREAM-INF:')) {
      const bw = parseInt(attr(lines[i], 'BANDWIDTH') || '0', 10);
      let j = i + 1;
      while (j < lines.length && (lines[j] === '' || lines[j].startsWith('#'))) j++;
      if (j < lines.length) variants.push({ bandwidth: bw, uri: resolve(base, lines[j]) });
      i = j;
    }
  }
  return variants.length ? variants : null;
}

// Media playlist -> {init, segments: [{uri, duration}], ended}
export function parseMedia(text, base) {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  const segs = [];
  let init = null;
  let dur = null;
  let ended = false;
  for (const l of lines) {
    if (l.startsWith('#EXT-X-MAP:')) {
      const u = attr(l, 'URI');
      if (u) init = resolve(base, u);
    } else if (l.startsWith('#EXTINF:')) {
      dur = parseFloat(l.slice(8));
    } else if (l === '#EXT-X-ENDLIST') {
      ended = true;
    } else if (l !== '' && !l.startsWith('#')) {
      segs.push({ uri: resolve(base, l), duration: Number.isFinite(dur) ? dur : 0 });
      dur = null;
    }
  }
  return { init, segments: segs, ended };
}

function getText(url) {
  const res = http.get(url, { responseType: 'text', tags: { name: 'playlist' } });
  account(res);
  return res.status === 200 ? res.body : null;
}

function pick(variants) {
  const sorted = variants.slice().sort((a, b) => a.bandwidth - b.bandwidth);
  if (RENDITION === 'lowest') return sorted[0];
  if (RENDITION === 'highest') return sorted[sorted.length - 1];
  const i = parseInt(RENDITION, 10);
  if (Number.isFinite(i)) return variants[Math.min(Math.max(i, 0), variants.length - 1)];
  return variants[Math.floor(Math.random() * variants.length)];
}

export default function () {
  const t0 = Date.now();
  const top = getText(URL);
  if (top === null) return failures.add(1);
  let mediaUrl = URL;
  let mediaText = top;
  const variants = parseMaster(top, URL);
  if (variants) {
    mediaUrl = pick(variants).uri;
    mediaText = getText(mediaUrl);
    if (mediaText === null) return failures.add(1);
  }
  const media = parseMedia(mediaText, mediaUrl);
  if (!media.segments.length) return failures.add(1);
  if (media.init) {
    const r = http.get(media.init, { tags: { name: 'init' } });
    account(r);
    if (r.status !== 200) return failures.add(1);
  }

  // Playback model (media seconds): `buffered` downloaded, playhead at `pos` while playing.
  let buffered = 0;
  let pos = 0;
  let playing = false;
  let started = false;
  let stallStart = 0;
  let last = Date.now();
  const advance = (now) => {
    if (playing) {
      pos += ((now - last) / 1000) * SPEED;
      if (pos >= buffered) {
        // Ran dry: the stall began when the playhead reached the end of the buffer.
        stallStart = now - ((pos - buffered) / SPEED) * 1000;
        pos = buffered;
        playing = false;
        rebuffers.add(1);
      }
    }
    last = now;
  };

  const list = MAX_SEGMENTS > 0 ? media.segments.slice(0, MAX_SEGMENTS) : media.segments;
  for (let i = 0; i < list.length; i++) {
    advance(Date.now());
    const ahead = buffered - pos;
    if (started && ahead > MAX_BUFFER_S) sleep((ahead - MAX_BUFFER_S) / SPEED); // think time
    const res = http.get(list[i].uri, { tags: { name: 'segment' } });
    account(res);
    segTime.add(res.timings.duration);
    if (res.status !== 200) return failures.add(1);
    segments.add(1);
    const now = Date.now();
    advance(now);
    buffered += list[i].duration;
    if (!started && (i + 1 >= PREBUFFER || i + 1 === list.length)) {
      started = true;
      playing = true;
      startup.add(now - t0);
    } else if (started && !playing) {
      stallTime.add(now - stallStart);
      playing = true;
    }
    last = now;
  }
  // Let the remaining buffer play out (the session's tail, as a real viewer would).
  advance(Date.now());
  if (buffered > pos) sleep((buffered - pos) / SPEED);
  sessions.add(1);
}

export const handleSummary = summarize('vod_players', (data, val) => ({
  vod_sessions_completed: val(data, 'vod_sessions_completed', 'count'),
  vod_session_failures: val(data, 'vod_session_failures', 'count'),
  vod_segments: val(data, 'vod_segments', 'count'),
  vod_startup_p50_ms: val(data, 'vod_startup_ms', 'p(50)'),
  vod_startup_p99_ms: val(data, 'vod_startup_ms', 'p(99)'),
  vod_segment_p99_ms: val(data, 'vod_segment_ms', 'p(99)'),
  vod_rebuffers: val(data, 'vod_rebuffers', 'count'),
  vod_stall_p99_ms: val(data, 'vod_stall_ms', 'p(99)'),
}), URL);
