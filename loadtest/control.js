// The control plane under load: VUS closed-loop clients, each with its own account (registered
// and logged in by setup()), calling one API operation for DURATION:
//
//   MODE=playback   POST /api/v1/playback/<TITLE>  (reads the title, checks tier and country,
//                   signs a URL; one database read per call besides the session check)
//   MODE=progress   PUT  /api/v1/progress/<TITLE>  (one committed write per call)
//
//   k6 run -e BASE=http://127.0.0.1:19200 -e MODE=progress -e VUS=16 -e DURATION=10s control.js
//   MODE=accounts   only registers and logs in VUS accounts, and writes their tokens (JSON) to
//                   TOKENS_OUT: a later run given TOKENS=<that file> skips setup(), so its time
//                   and CPU are only the operation's (password hashing is deliberately slow)
//   TITLE=demo  the title (the edge's [demo] title by default)
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import { env, envInt, BASE, account, summarize, TREND_STATS } from './lib.js';

const MODE = env('MODE', 'progress');
const TITLE = env('TITLE', 'demo');
const VUS = envInt('VUS', 16);
const calls = new Counter('control_calls');
const callMs = new Trend('control_ms', true);
const failed = new Counter('control_failed');
const JSON_HEADERS = { 'Content-Type': 'application/json' };
if (!['accounts', 'playback', 'progress'].includes(MODE)) throw new Error(`MODE must be accounts, playback or progress, not ${MODE}`);
const TOKENS = env('TOKENS', '') ? JSON.parse(open(env('TOKENS'))) : null;

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  setupTimeout: '120s',
  scenarios: {
    control:
      MODE === 'accounts'
        ? { executor: 'shared-iterations', vus: 1, iterations: 1 }
        : { executor: 'constant-vus', vus: VUS, duration: env('DURATION', '10s'), gracefulStop: '5s' },
  },
};

// One account and session per VU (registrations count against the per-address limit: the
// bench config raises it).
export function setup() {
  if (TOKENS) return { tokens: TOKENS };
  const run = Date.now();
  const tokens = [];
  for (let i = 0; i < VUS; i++) {
    const body = JSON.stringify({ email: `bench-${run}-${i}@example.com`, password: 'correct horse battery' });
    const r = http.post(`${BASE}/api/v1/users`, body, { headers: JSON_HEADERS, responseType: 'none' });
    if (r.status !== 201) throw new Error(`register: ${r.status}`);
    const s = http.post(`${BASE}/api/v1/sessions`, body, { headers: JSON_HEADERS, responseType: 'text' });
    if (s.status !== 201) throw new Error(`login: ${s.status}`);
    tokens.push(JSON.parse(s.body).token);
  }
  return { tokens };
}

export default function (data) {
  if (MODE === 'accounts') return;
  const headers = Object.assign({ Authorization: `Bearer ${data.tokens[(__VU - 1) % data.tokens.length]}` }, JSON_HEADERS);
  let r;
  if (MODE === 'playback') {
    r = http.post(`${BASE}/api/v1/playback/${TITLE}`, null, { headers, tags: { name: 'playback' } });
  } else {
    // Any position within the demo title's 20 s.
    const body = JSON.stringify({ position_seconds: __ITER % 20 });
    r = http.put(`${BASE}/api/v1/progress/${TITLE}`, body, { headers, tags: { name: 'progress' } });
  }
  account(r);
  calls.add(1);
  callMs.add(r.timings.duration);
  if (r.status !== 200) failed.add(1);
}

const summary = summarize(`control_${MODE}`, (data, val) => ({
  control_vus: VUS,
  control_calls: val(data, 'control_calls', 'count'),
  control_failed: val(data, 'control_failed', 'count'),
  control_p50_ms: val(data, 'control_ms', 'p(50)'),
  control_p99_ms: val(data, 'control_ms', 'p(99)'),
}));

export function handleSummary(data) {
  const out = summary(data);
  if (MODE === 'accounts') out[env('TOKENS_OUT', 'tokens.json')] = JSON.stringify(data.setup_data.tokens);
  return out;
}
