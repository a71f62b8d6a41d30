// Soak: mixed load for a long run (loadtest/soak.sh samples the edge's RSS meanwhile).
// Scenarios, all at once for DURATION:
//   hot      HOT_VUS closed-loop clients on one 1 KiB playlist and one 1 MiB segment
//   cold     COLD_RATE/s requests for never-seen 4 MiB objects from a paced origin (fills)
//   zipf     ZIPF_VUS clients over a ZIPF_N x 256 KiB catalog larger than the memory tier
//   purges   PURGE_RATE/s PURGE requests for random catalog objects
// (slow readers come from loadtest/slow_clients.py, started by soak.sh beside k6).
//
//   k6 run -e BASE=http://127.0.0.1:8080 -e DURATION=30m soak.js
import http from 'k6/http';
import { env, envInt, BASE, account, summarize, TREND_STATS } from './lib.js';
import { sampleRank } from './zipf.js';

const DURATION = env('DURATION', '30m');
const COLD_SIZE = envInt('COLD_SIZE', 4 << 20);

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  scenarios: {
    hot: { executor: 'constant-vus', exec: 'hot', vus: envInt('HOT_VUS', 8), duration: DURATION, gracefulStop: '10s' },
    cold: {
      executor: 'constant-arrival-rate', exec: 'cold', rate: envInt('COLD_RATE', 5), timeUnit: '1s',
      duration: DURATION, preAllocatedVUs: 20, maxVUs: 100, gracefulStop: '30s',
    },
    zipf: { executor: 'constant-vus', exec: 'zipf', vus: envInt('ZIPF_VUS', 8), duration: DURATION, gracefulStop: '10s' },
    purges: {
      executor: 'constant-arrival-rate', exec: 'purge', rate: envInt('PURGE_RATE', 2), timeUnit: '1s',
      duration: DURATION, preAllocatedVUs: 2, maxVUs: 10, gracefulStop: '10s',
    },
  },
};

export function hot() {
  account(http.get(`${BASE}/hot/index.m3u8?size=1024`, { tags: { name: 'hot_playlist' } }));
  account(http.get(`${BASE}/hot/segment.ts?size=1048576`, { tags: { name: 'hot_segment' } }));
}

export function cold() {
  // A new object each time: a fill from an origin that takes ~1 s to send it.
  const id = `${__VU}-${__ITER}-${Date.now()}`;
  account(http.get(`${BASE}/cold/${id}.ts?size=${COLD_SIZE}&pace=1000`, { tags: { name: 'cold' }, timeout: '60s' }));
}

function catalogPath(k) {
  return `/zipf/${String(k).padStart(5, '0')}.ts?size=262144`;
}

export function zipf() {
  account(http.get(`${BASE}${catalogPath(sampleRank())}`, { tags: { name: 'zipf' } }));
}

export function purge() {
  const res = http.request('PURGE', `${BASE}${catalogPath(sampleRank())}`, null, { tags: { name: 'purge' } });
  if (res.status !== 200 && res.status !== 404) account(res);
}

export const handleSummary = summarize('soak');
