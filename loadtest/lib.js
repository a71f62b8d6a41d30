// Shared helpers for the loadtest/ k6 scripts: env parsing, per-response accounting
// (status and X-Cache), and a compact summary (stdout text + optional JSON file).
//
// Every script accepts:
//   BASE      target base URL                  (default http://127.0.0.1:8080)
//   SUMMARY   path of a JSON summary to write  (default: none; stdout only)
import { Counter } from 'k6/metrics';

export function env(name, dflt) {
  const v = __ENV[name];
  return v === undefined || v === '' ? dflt : v;
}
export function envInt(name, dflt) {
  const v = parseInt(env(name, ''), 10);
  return Number.isFinite(v) ? v : dflt;
}
export function envFloat(name, dflt) {
  const v = parseFloat(env(name, ''));
  return Number.isFinite(v) ? v : dflt;
}

export const BASE = env('BASE', 'http://127.0.0.1:8080').replace(/\/+$/, '');

// Only loopback targets: these scripts are benchmarks for one machine.
export function assertLoopback(url) {
  if (!/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(\/|$)/.test(url)) {
    throw new Error(`refusing non-loopback target ${url}`);
  }
}
assertLoopback(BASE);

const non200 = new Counter('status_non200');
const transportErrors = new Counter('transport_errors');
const xHit = new Counter('xcache_hit');
const xMiss = new Counter('xcache_miss');
const xOther = new Counter('xcache_other');

// Count one response: status class, transport error, and the proxy's X-Cache verdict
// (edge: HIT|MISS|STALE|...; nginx: $upstream_cache_status; varnish: HIT|MISS from our VCL).
export function account(res) {
  if (res.error_code && res.status === 0) {
    transportErrors.add(1, { error: String(res.error_code) });
  } else if (res.status !== 200) {
    non200.add(1, { status: String(res.status) });
  }
  const xc = (res.headers['X-Cache'] || '').toUpperCase();
  if (xc.startsWith('HIT')) xHit.add(1);
  else if (xc.startsWith('MISS')) xMiss.add(1);
  else xOther.add(1);
}

export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(50)', 'p(90)', 'p(99)'];

function val(data, metric, key, dflt = 0) {
  const m = data.metrics[metric];
  if (!m || !m.values || m.values[key] === undefined) return dflt;
  return m.values[key];
}

// handleSummary builder: `extra(data)` adds scenario-specific fields to the JSON.
export function summarize(name, extra, target = BASE) {
  return function (data) {
    const durS = (data.state && data.state.testRunDurationMs ? data.state.testRunDurationMs : 0) / 1000;
    const out = {
      scenario: name,
      base: target,
      duration_s: durS,
      requests: val(data, 'http_reqs', 'count'),
      rps: val(data, 'http_reqs', 'rate'),
      p50_ms: val(data, 'http_req_duration', 'p(50)'),
      p90_ms: val(data, 'http_req_duration', 'p(90)'),
      p99_ms: val(data, 'http_req_duration', 'p(99)'),
      max_ms: val(data, 'http_req_duration', 'max'),
      bytes_received: val(data, 'data_received', 'count'),
      bytes_per_s: val(data, 'data_received', 'rate'),
      non200: val(data, 'status_non200', 'count'),
      transport_errors: val(data, 'transport_errors', 'count'),
      xcache_hit: val(data, 'xcache_hit', 'count'),
      xcache_miss: val(data, 'xcache_miss', 'count'),
      xcache_other: val(data, 'xcache_other', 'count'),
    };
    if (extra) Object.assign(out, extra(data, val));
    const lines = [
      `${name} -> ${target}: ${out.requests} requests in ${durS.toFixed(1)} s = ${out.rps.toFixed(0)} req/s, ` +
        `${((out.bytes_per_s * 8) / 1e9).toFixed(2)} Gbit/s received`,
      `  latency ms: p50 ${out.p50_ms.toFixed(2)}  p90 ${out.p90_ms.toFixed(2)}  p99 ${out.p99_ms.toFixed(2)}  max ${out.max_ms.toFixed(2)}`,
      `  non-200: ${out.non200}  transport errors: ${out.transport_errors}  ` +
        `X-Cache: HIT ${out.xcache_hit} MISS ${out.xcache_miss} other ${out.xcache_other}`,
    ];
    for (const [k, v] of Object.entries(out)) {
      if (!(k in { scenario: 1, base: 1 }) && typeof v === 'number' && /^(herd|zipf|vod)_/.test(k)) {
        lines.push(`  ${k}: ${Number.isInteger(v) ? v : v.toFixed(2)}`);
      }
    }
    const result = { stdout: lines.join('\n') + '\n' };
    const file = env('SUMMARY', '');
    if (file) result[file] = JSON.stringify(out, null, 1);
    return result;
  };
}
