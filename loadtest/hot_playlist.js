// (a) Hot hits on a 1 KiB playlist: VUS closed-loop clients request the same cached playlist
// over keep-alive connections for DURATION. Warm the object first (compare.sh does); every
// request should then be a cache hit, so this measures the proxy's per-request overhead.
//
//   k6 run -e BASE=http://127.0.0.1:8080 -e VUS=50 -e DURATION=20s hot_playlist.js
//   OBJECT   path (+query) of the playlist (default /hot/playlist.m3u8?size=1024)
import http from 'k6/http';
import { env, envInt, BASE, account, summarize, TREND_STATS } from './lib.js';

const OBJECT = env('OBJECT', '/hot/playlist.m3u8?size=1024');
const URL = BASE + OBJECT;

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
  scenarios: {
    hot_playlist: { executor: 'constant-vus', vus: envInt('VUS', 50), duration: env('DURATION', '20s'), gracefulStop: '5s' },
  },
};

export default function () {
  account(http.get(URL));
}

export const handleSummary = summarize('hot_playlist');
