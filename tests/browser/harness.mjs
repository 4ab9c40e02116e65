// What every browser scenario shares: its config (argv or stdin), headless Chromium
// sessions (each its own profile and fake camera), named steps, waiting on page state,
// screenshots, and the one JSON result line on stdout (`ok`, the failed step and its
// error, console errors, CSP violations) with a non-zero exit on failure.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

export async function readConfig() {
  if (process.argv[2]) return JSON.parse(process.argv[2]);
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return JSON.parse(text);
}

export const round = (x) => (x === null || x === undefined ? null : Math.round(x * 100) / 100);

/** A scenario run: `step`, `open`, `until`, `untilAsync`, `goLive`, `shot`, and `run(main)`. */
export function harness(cfg, scenario) {
  const STEP_MS = cfg.stepTimeoutMs ?? 30000;
  const artifacts = path.resolve(cfg.artifactsDir || path.join(path.dirname(fileURLToPath(import.meta.url)), '../../target/artifacts'));
  fs.mkdirSync(artifacts, { recursive: true });
  const result = { ok: false, step: null, timingsMs: {}, screenshots: [], consoleErrors: 0 };
  const sessions = [];
  const tmpDirs = [];
  const t0 = Date.now();

  /** Runs one named step; its name is reported if it fails. */
  async function step(name, fn) {
    result.step = name;
    const started = Date.now();
    const value = await fn();
    result.timingsMs[name] = Date.now() - started;
    return value;
  }

  /** Opens `url` in a fresh browser (own profile dir, own fake devices). */
  async function open(name, url, viewport, extra = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lockstep-${name}-`));
    tmpDirs.push(dir);
    const context = await chromium.launchPersistentContext(dir, {
      executablePath: cfg.chromium || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport,
      ...extra,
    });
    const page = context.pages()[0] || (await context.newPage());
    const session = { name, context, page, errors: [] };
    // Content-security-policy violations are recorded by the page itself too.
    await page.addInitScript(() => {
      window.__cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    page.on('console', (msg) => {
      if (msg.type() === 'error') {
        session.errors.push(msg.text());
        process.stderr.write(`[${name} console] ${msg.text()}\n`);
      }
    });
    page.on('pageerror', (err) => {
      session.errors.push(String(err));
      process.stderr.write(`[${name} pageerror] ${err}\n`);
    });
    page.on('response', (resp) => {
      if (resp.status() >= 400) process.stderr.write(`[${name} http ${resp.status()}] ${resp.request().method()} ${resp.url()}\n`);
    });
    page.on('requestfailed', (req) => {
      process.stderr.write(`[${name} request failed] ${req.method()} ${req.url()}: ${req.failure()?.errorText}\n`);
    });
    sessions.push(session);
    await page.goto(url, { waitUntil: 'load', timeout: STEP_MS });
    return session;
  }

  /** Waits until `fn(arg)` is truthy in the page; returns its value. */
  async function until(session, fn, arg, what) {
    try {
      const handle = await session.page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 50 });
      return await handle.jsonValue();
    } catch (e) {
      throw new Error(`${session.name}: timed out after ${STEP_MS} ms waiting for ${what}: ${e.message.split('\n')[0]}`);
    }
  }

  /** Like `until`, for an async `fn` (waitForFunction would take its promise as truthy):
   * evaluates it every 100 ms until its result is truthy. */
  async function untilAsync(session, fn, arg, what) {
    const deadline = Date.now() + STEP_MS;
    let last;
    while (Date.now() < deadline) {
      last = await session.page.evaluate(fn, arg);
      if (last) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${session.name}: timed out after ${STEP_MS} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
  }

  /** Clicks "go live" on the anchor's page once it is ready; with `media`, waits for its
   * WHIP stream to connect and returns the session's location. */
  async function goLive(anchor, media = true) {
    await until(anchor, () => window.lockstep && !document.querySelector('[data-testid="go-live"]').disabled, null, 'the control channel to join');
    await until(anchor, () => document.querySelector('[data-testid="preview"]').readyState >= 2, null, 'the camera preview');
    await anchor.page.click('[data-testid="go-live"]');
    await until(anchor, () => window.lockstep.state === 'live', null, 'room_state live');
    if (!media) return null;
    const status = await until(anchor,
      () => ['connected', 'failed'].includes(window.lockstep.whip?.status) && window.lockstep.whip,
      null, 'the WHIP stream to connect');
    if (status.status !== 'connected') throw new Error(`WHIP publish failed: ${JSON.stringify(status.error)}`);
    return status.location;
  }

  async function shot(session, file) {
    const p = path.join(artifacts, file);
    await session.page.screenshot({ path: p, fullPage: true });
    result.screenshots.push(p);
    return p;
  }

  /** Runs `main`, then prints the result line and exits; `onFailure` adds to a failed
   * result before the failure screenshots. */
  async function run(main, onFailure = async () => {}) {
    let exitCode = 0;
    try {
      await main();
      result.ok = true;
      result.step = null;
    } catch (e) {
      result.ok = false;
      result.error = e.message;
      exitCode = 1;
      process.stderr.write(`${scenario}: step ${result.step} failed: ${e.message}\n`);
      await onFailure(sessions).catch(() => {});
      for (const s of sessions) {
        try {
          const p = path.join(artifacts, `failure-${scenario}-${s.name}.png`);
          await s.page.screenshot({ path: p, fullPage: true, timeout: 5000 });
          result.screenshots.push(p);
        } catch {
          /* the page may be gone */
        }
      }
    } finally {
      result.consoleErrors = sessions.reduce((n, s) => n + s.errors.length, 0);
      result.cspViolations = (await Promise.all(sessions.map((s) =>
        s.page.evaluate(() => window.__cspViolations ?? []).catch(() => [])))).flat();
      result.totalMs = Date.now() - t0;
      await Promise.all(sessions.map((s) => s.context.close().catch(() => {})));
      for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(exitCode);
  }

  return { STEP_MS, artifacts, result, step, open, until, untilAsync, goLive, shot, run };
}
