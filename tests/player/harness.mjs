// What the live player checks (live.mjs, lowlatency.mjs) share: a temp folder and the processes
// to stop at the end, free loopback ports, an edge with tokens required in front of an
// origin (started, waited for, its signed URL), the page server for page.html and the players'
// scripts, headless Chromium, a player page that records every failed request, and a summary of
// latency samples.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../..');
export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// A check's temp folder, the processes and servers it started, its browser: all stopped and
// removed by `cleanup` (also on SIGTERM, which run.sh's timeout sends).
export class Harness {
  constructor(name) {
    this.name = name;
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `edge-${name}-`));
    this.children = [];
    this.servers = [];
    this.browser = null;
    process.on('SIGTERM', async () => { await this.cleanup(); process.exit(143); });
  }

  say(m) { console.error(`${this.name}: ${m}`); }

  spawn(cmd, args, opts) {
    const c = spawn(cmd, args, opts);
    this.children.push(c);
    return c;
  }

  async cleanup() {
    if (this.browser) await this.browser.close().catch(() => {});
    for (const c of this.children) { try { c.kill('SIGTERM'); } catch {} }
    await sleep(300);
    for (const c of this.children) { try { c.kill('SIGKILL'); } catch {} }
    for (const s of this.servers) { try { s.close(); } catch {} }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

// `n` free loopback ports (all held at once, so they differ).
export async function freePorts(n) {
  const s = Array.from({ length: n }, () => net.createServer());
  await Promise.all(s.map((x) => new Promise((ok) => x.listen(0, '127.0.0.1', ok))));
  const ports = s.map((x) => x.address().port);
  await Promise.all(s.map((x) => new Promise((ok) => x.close(ok))));
  return ports;
}

// An edge (EDGE_BIN) in `h.tmp/<dir>` in front of `originHost` (host:port), tokens required
// with the demo test key, its access log in JSON; ready when it returns. `signed`: a query-
// token URL for `path` (ACL `acl`).
export async function startEdge(h, edgeBin, { dir, originHost, acl, path: target, pool = 'origin' }) {
  const d = path.join(h.tmp, dir);
  fs.mkdirSync(d, { recursive: true });
  const [httpPort, adminPort] = await freePorts(2);
  const config = path.join(d, 'edge.toml');
  fs.writeFileSync(config, `[server]
http = "127.0.0.1:${httpPort}"
admin = "127.0.0.1:${adminPort}"
grace_period = "1s"
shutdown_timeout = "2s"
[cache]
dir = "${d}/cache"
disk = "64 MiB"
max_object = "8 MiB"
[log]
access = "${d}/access.log"
format = "json"
[[origins]]
name = "${pool}"
nodes = [{ addr = "${originHost}" }]
[tokens]
required = true
current = "demo"
keys = [{ id = "demo", secret_file = "${root}/certs/demo-token.TEST-KEY.hex" }]
`);
  const proc = h.spawn(edgeBin, ['serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const e = { dir, config, httpPort, adminPort, log: '', access: path.join(d, 'access.log') };
  proc.stderr.on('data', (x) => { e.log = (e.log + x).slice(-4000); });
  for (let i = 0; ; i++) {
    if (i > 150) throw new Error(`edge ${dir} not ready after 15 s: ${e.log}`);
    if (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false)) break;
    await sleep(100);
  }
  e.signed = execFileSync(edgeBin, ['sign', '--config', config, '--acl', acl, '--ttl', '2h',
    '--style', 'query', `http://127.0.0.1:${httpPort}${target}`]).toString().trim();
  return e;
}

// Chromium must reach nothing but loopback: every other host fails to resolve, and any proxied
// request goes to a dead proxy (port 9, discard).
export const CHROME_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--proxy-server=http://127.0.0.1:9',
  '--proxy-bypass-list=localhost;127.0.0.1;[::1];127.*',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*, EXCLUDE [::1]',
  '--autoplay-policy=no-user-gesture-required',
];

// page.html and every script it loads (a 404 is a failed request, which fails a run).
export const PAGE_FILES = {
  '/': ['page.html', 'text/html; charset=utf-8'],
  '/page.html': ['page.html', 'text/html; charset=utf-8'],
  '/hls.min.js': ['node_modules/hls.js/dist/hls.min.js', 'text/javascript; charset=utf-8'],
  '/dash.all.min.js': ['node_modules/dashjs/dist/modern/umd/dash.all.min.js', 'text/javascript; charset=utf-8'],
};

// The page server and headless Chromium; returns the page's URL.
export async function startBrowser(h) {
  const pages = http.createServer((req, res) => {
    const f = PAGE_FILES[new URL(req.url, 'http://x').pathname];
    if (!f) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': f[1] }).end(fs.readFileSync(path.join(here, f[0])));
  });
  await new Promise((ok) => pages.listen(0, '127.0.0.1', ok));
  h.servers.push(pages);
  h.browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROME_ARGS,
  });
  return `http://127.0.0.1:${pages.address().port}/page.html`;
}

// A page playing `url` live with `opts` (page.html's edgePlay); `failed` collects every answer
// of 400 or more and every failed request, with why and when (seconds since `t0`).
export async function openPlayer(h, pageUrl, name, url, opts, t0 = Date.now()) {
  const page = await h.browser.newPage();
  const failed = [];
  page.on('response', (rs) => { if (rs.status() >= 400) failed.push(`${rs.status()} ${rs.url()}`); });
  page.on('requestfailed', (rq) => failed.push(
    `failed (${rq.failure()?.errorText}, ${((Date.now() - t0) / 1000).toFixed(2)} s into the run) ${rq.url()}`));
  await page.goto(pageUrl, { waitUntil: 'load' });
  await page.evaluate(([u, o]) => window.edgePlay(u, o), [url, opts]);
  return { name, url, page, failed };
}

// Mean, max and min of samples (2 decimals), or null without any.
export function stat(xs) {
  return xs.length ? {
    mean: +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2),
    max: +Math.max(...xs).toFixed(2), min: +Math.min(...xs).toFixed(2),
  } : null;
}
