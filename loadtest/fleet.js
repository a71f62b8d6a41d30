// Fleet players: VUS closed-loop clients spread over the edges of a fleet (EDGES, comma-separated
// base URLs): VU i plays through edge (i - 1) mod K, as DNS would pin a viewer to one POP. Each
// request picks object k of a Zipf catalog (the sampler of zipf.js: N objects of SIZE bytes,
// exponent S) and asks for /fleet/<k>.ts with one CDN host name (HOST), since the host is part
// of the cache key at the edges and the shields. Responses are tagged with their edge's index.
//
//   k6 run -e EDGES=http://127.0.0.1:19100,http://127.0.0.1:19102 -e VUS=40 -e DURATION=20s fleet.js
//   N=2000 SIZE=262144 S=1.0   catalog (as zipf.js)
//   HOST=cdn.test              the Host header every edge sees
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import { env, envInt, account, assertLoopback, summarize, TREND_STATS } from './lib.js';
import { sampleRank } from './zipf.js';

const EDGES = env('EDGES', 'http://127.0.0.1:8080')
  .split(',')
  .map((u) => u.trim().replace(/\/+$/, ''))
  .filter((u) => u !== '');
EDGES.forEach(assertLoopback);
const SIZE = envInt('SIZE', 256 * 1024);
const HOST = env('HOST', 'cdn.test');
const perEdge = new Counter('fleet_edge_requests');

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  scenarios: {
    fleet: { executor: 'constant-vus', vus: envInt('VUS', 40), duration: env('DURATION', '20s'), gracefulStop: '5s' },
  },
};

export default function () {
  const e = (__VU - 1) % EDGES.length;
  const k = sampleRank();
  const url = `${EDGES[e]}/fleet/${String(k).padStart(5, '0')}.ts?size=${SIZE}`;
  account(http.get(url, { headers: { Host: HOST }, tags: { name: 'fleet', edge: String(e) } }));
  perEdge.add(1, { edge: String(e) });
}

export const handleSummary = summarize(
  'fleet',
  () => ({ fleet_edges: EDGES.length, zipf_catalog_objects: envInt('N', 2000), zipf_object_bytes: SIZE }),
  EDGES.join(','),
);
