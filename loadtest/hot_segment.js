// (b) Hot hits on a 1 MiB segment: VUS closed-loop clients request the same cached segment
// for DURATION. Measures delivery throughput (Gbit/s) of a cached object.
//
//   k6 run -e BASE=http://127.0.0.1:8080 -e VUS=20 -e DURATION=20s hot_segment.js
//   OBJECT   path (+query) of the segment (default /hot/segment.ts?size=1048576)
import http from 'k6/http';
import { env, envInt, BASE, account, summarize, TREND_STATS } from './lib.js';

const OBJECT = env('OBJECT', '/hot/segment.ts?size=1048576');
const URL = BASE + OBJECT;

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  scenarios: {
    hot_segment: { executor: 'constant-vus', vus: envInt('VUS', 20), duration: env('DURATION', '20s'), gracefulStop: '5s' },
  },
};

export default function () {
  account(http.get(URL));
}

export const handleSummary = summarize('hot_segment');
