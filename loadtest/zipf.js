// (d) Zipf popularity over a catalog larger than the proxy's memory tier: VUS closed-loop
// clients each pick object k (rank 1..N) with probability proportional to 1/k^S and request
// /zipf/<k>.ts?size=SIZE. The default catalog is 2000 x 256 KiB = 500 MiB against a 128 MiB
// memory budget per proxy. The proxy starts cold; compare.sh derives the hit ratio from the
// origin's request count (origin fetches / client requests), which includes the compulsory
// first miss of every object touched.
//
//   k6 run -e BASE=http://127.0.0.1:8080 -e VUS=50 -e DURATION=20s zipf.js
//   N=2000 SIZE=262144 S=1.0   catalog size, object size, zipf exponent
//   PREFIX=/zipf               path prefix of the catalog
import http from 'k6/http';
import { env, envInt, envFloat, BASE, account, summarize, TREND_STATS } from './lib.js';

const N = envInt('N', 2000);
const SIZE = envInt('SIZE', 256 * 1024);
const S = envFloat('S', 1.0);
const PREFIX = env('PREFIX', '/zipf');

// Cumulative distribution over ranks 1..N (per VU; N floats).
const cdf = new Float64Array(N);
{
  let acc = 0;
  for (let k = 1; k <= N; k++) {
    acc += 1 / Math.pow(k, S);
    cdf[k - 1] = acc;
  }
  for (let i = 0; i < N; i++) cdf[i] /= acc;
}

export function sampleRank() {
  const u = Math.random();
  let lo = 0;
  let hi = N - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo + 1;
}

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  scenarios: {
    zipf: { executor: 'constant-vus', vus: envInt('VUS', 50), duration: env('DURATION', '20s'), gracefulStop: '5s' },
  },
};

export default function () {
  const k = sampleRank();
  account(http.get(`${BASE}${PREFIX}/${String(k).padStart(5, '0')}.ts?size=${SIZE}`, { tags: { name: 'zipf' } }));
}

export const handleSummary = summarize('zipf', () => ({
  zipf_catalog_objects: N,
  zipf_object_bytes: SIZE,
  zipf_exponent: S,
}));
