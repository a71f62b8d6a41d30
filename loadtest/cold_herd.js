// (c) Cold herd: CLIENTS clients request one new (never cached) segment at the same moment;
// repeated for WAVES distinct segments, one wave every PERIOD_MS.
//
// Synchronisation: setup() fixes a start time t0; in iteration i every VU sleeps until
// t0 + i*PERIOD_MS, then requests segment i. So wave i targets a new object, and all CLIENTS
// requests of a wave are issued within a few ms of each other (herd_start_skew_ms reports how
// close). Before wave 0 each VU opens its keep-alive connection with a request for WARM (a
// small object that compare.sh caches first), so connection setup is not part of wave 0.
//
// Each client's total response time (request issued -> last body byte, incl. any connection
// wait) is recorded in herd_total_ms; compare it with the origin's own response time for the
// object (TTFB_MS + PACE_MS by construction; compare.sh measures it directly on the origin).
//
//   k6 run -e BASE=http://127.0.0.1:8080 cold_herd.js
//   CLIENTS=200 WAVES=20 PERIOD_MS=3000 SIZE=1048576 TTFB_MS=200 PACE_MS=300
//   RUN        object name prefix, distinct per run (default: current time)
//   WARM       path (+query) of the warm-up object (default /herd/warm.m3u8?size=1024)
//   LEAD_MS    time from setup() to wave 0 (default 2000)
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { env, envInt, BASE, account, summarize, TREND_STATS } from './lib.js';

const CLIENTS = envInt('CLIENTS', 200);
const WAVES = envInt('WAVES', 20);
const PERIOD_MS = envInt('PERIOD_MS', 3000);
const SIZE = envInt('SIZE', 1 << 20);
const TTFB_MS = envInt('TTFB_MS', 200);
const PACE_MS = envInt('PACE_MS', 300);
const LEAD_MS = envInt('LEAD_MS', 2000);
const RUN = env('RUN', String(Date.now()));
const WARM = env('WARM', '/herd/warm.m3u8?size=1024');

const total = new Trend('herd_total_ms', true);
const ttfb = new Trend('herd_ttfb_ms', true);
const skew = new Trend('herd_start_skew_ms', true);
const late = new Counter('herd_late_starts');

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  setupTimeout: '30s',
  scenarios: {
    cold_herd: {
      executor: 'per-vu-iterations',
      vus: CLIENTS,
      iterations: WAVES,
      maxDuration: `${Math.ceil((LEAD_MS + WAVES * PERIOD_MS) / 1000) + 60}s`,
      gracefulStop: '10s',
    },
  },
};

export function segmentUrl(wave) {
  return `${BASE}/herd/${RUN}-w${String(wave).padStart(3, '0')}.ts?size=${SIZE}&ttfb=${TTFB_MS}&pace=${PACE_MS}`;
}

export function setup() {
  return { t0: Date.now() + LEAD_MS };
}

export default function (data) {
  const wave = exec.vu.iterationInScenario;
  if (wave === 0) http.get(BASE + WARM, { tags: { name: 'warm' } });
  const at = data.t0 + wave * PERIOD_MS;
  const wait = at - Date.now();
  if (wait > 0) sleep(wait / 1000);
  const s = Date.now() - at;
  skew.add(s);
  if (s > 100) late.add(1);
  const res = http.get(segmentUrl(wave), { tags: { name: 'herd' } });
  account(res);
  const t = res.timings;
  total.add(t.blocked + t.connecting + t.tls_handshaking + t.sending + t.waiting + t.receiving);
  ttfb.add(t.blocked + t.connecting + t.tls_handshaking + t.sending + t.waiting);
}

export const handleSummary = summarize('cold_herd', (data, val) => ({
  herd_clients: CLIENTS,
  herd_waves: WAVES,
  herd_origin_nominal_ms: TTFB_MS + PACE_MS,
  herd_total_p50_ms: val(data, 'herd_total_ms', 'p(50)'),
  herd_total_p99_ms: val(data, 'herd_total_ms', 'p(99)'),
  herd_total_max_ms: val(data, 'herd_total_ms', 'max'),
  herd_ttfb_p50_ms: val(data, 'herd_ttfb_ms', 'p(50)'),
  herd_ttfb_max_ms: val(data, 'herd_ttfb_ms', 'max'),
  herd_start_skew_p99_ms: val(data, 'herd_start_skew_ms', 'p(99)'),
  herd_start_skew_max_ms: val(data, 'herd_start_skew_ms', 'max'),
  herd_late_starts: val(data, 'herd_late_starts', 'count'),
}));
