// Shared helpers of the dit-serve tests: start the server on a free
// loopback port, launch Debian's Chromium headless through playwright-core,
// poll JSON.  Exit status 77 (skip) when something the test needs is not
// installed; the tests install nothing themselves.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// Servers this test started.  When the test itself is stopped (meson's
// timeout sends SIGTERM, a user presses Ctrl-C) or exits without its
// cleanups, they go with it instead of running on as orphans.
const spawned = new Set();
process.on('exit', () => {
  for (const p of spawned)
    if (p.exitCode === null && p.signalCode === null)
      p.kill('SIGKILL');
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'])
  process.on(sig, () => {
    console.error(`test stopped by ${sig}`);
    process.exit(1);
  });
export const CHROMIUM = process.env.DIT_SERVE_CHROMIUM || '/usr/bin/chromium';

export function skip(why) {
  console.log(`SKIP: ${why}`);
  process.exit(77);
}

export function fail(why) {
  console.error(`FAIL: ${why}`);
  process.exitCode = 1;
  throw new Error(why);
}

export function check(cond, what) {
  if (!cond)
    fail(what);
  console.log(`ok - ${what}`);
}

export function serverBinary() {
  const bin = process.env.DIT_SERVE;
  if (!bin || !existsSync(bin))
    skip('DIT_SERVE does not point at a built dit-serve');
  return bin;
}

// playwright-core from tests/serve/node_modules (npm ci), or skip.
export async function loadChromium() {
  if (!existsSync(CHROMIUM))
    skip(`${CHROMIUM} is missing (Debian package chromium)`);
  if (!existsSync(join(here, 'node_modules', 'playwright-core')))
    skip(`playwright-core is missing: run "npm ci" in ${here}`);
  const pw = await import('playwright-core');
  return pw.chromium;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn() until it returns a truthy value; fail after timeoutMs.
export async function poll(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last)
      return last;
    await sleep(250);
  }
  fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// Start dit-serve with --port 0 and wait for its "listening on URL" line.
// ICE runs on loopback only, on both sides (see launchBrowser), so the
// tests do not depend on which network interfaces the machine has.  The
// weights are the tiny presets, named (the server and its pipeline are
// checked, not a model); a test's own args come after and may override.
const TINY = ['--model', 'tiny', '--vae-model', 'tiny',
  '--text-model', 'tiny'];
export async function startServer(args = [], env = {}) {
  const proc = spawn(serverBinary(),
    ['--port', '0', '--ice-address', '127.0.0.1', ...TINY, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  spawned.add(proc);
  proc.on('exit', () => spawned.delete(proc));
  let log = '';
  const onData = (d) => {
    log += d.toString();
    process.stdout.write(`[dit-serve] ${d}`);
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) =>
    resolve(code === null ? `signal ${sig}` : code)));
  const url = await poll(async () => {
    const m = log.match(/listening on (http:\/\/\S+)/);
    if (proc.exitCode !== null)
      fail(`dit-serve exited early with ${proc.exitCode}`);
    return m && m[1];
  }, 60000, 'dit-serve to listen');
  return {
    url,
    proc,
    // Everything the server printed so far.
    log: () => log,
    // SIGTERM, and check the clean exit status.
    async stop() {
      if (this.stopped)
        return;
      this.stopped = true;
      if (proc.exitCode === null)
        proc.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(20000).then(() => 'hung')]);
      if (code === 'hung') {
        proc.kill('SIGKILL');
        fail('dit-serve did not stop within 20 s of SIGTERM');
      }
      check(code === 0, `dit-serve exits 0 on SIGTERM (got ${code})`);
    },
  };
}

// Wait until the viewer page has decoded more than n frames; on a timeout,
// print what the page's peer connection saw before failing.
export async function waitDecoded(page, n, timeoutMs, what) {
  const decoded = async () => page.evaluate(async () => {
    const v = await window.ditViewer.inboundVideo();
    return v ? v.framesDecoded : 0;
  });
  try {
    await poll(async () => (await decoded()) > n, timeoutMs, what);
  } catch (e) {
    console.error(`viewer page: ${JSON.stringify(await viewerDiagnostics(page))}`);
    throw e;
  }
  return decoded;
}

// The page's status line, its peer connection's states, its SDP candidates
// and its ICE candidate pairs.
export async function viewerDiagnostics(page) {
  return page.evaluate(async () => {
    const pc = window.ditViewer.pc;
    const out = { status: document.getElementById('status').textContent };
    if (!pc)
      return out;
    const cands = (d) => (d ? d.sdp.split('\r\n')
      .filter((l) => l.startsWith('a=candidate:')) : null);
    Object.assign(out, { connection: pc.connectionState,
      ice: pc.iceConnectionState, gathering: pc.iceGatheringState,
      local: cands(pc.localDescription), remote: cands(pc.remoteDescription),
      pairs: [], inbound: null });
    const report = await pc.getStats();
    const where = (id) => {
      const c = report.get(id);
      return c ? `${c.protocol} ${c.address}:${c.port}` : id;
    };
    report.forEach((s) => {
      if (s.type === 'candidate-pair')
        out.pairs.push({ local: where(s.localCandidateId),
          remote: where(s.remoteCandidateId), state: s.state,
          nominated: s.nominated, sent: s.requestsSent,
          received: s.responsesReceived });
      else if (s.type === 'inbound-rtp' && s.kind === 'video')
        out.inbound = { packets: s.packetsReceived, decoded: s.framesDecoded,
          codec: s.codecId };
    });
    return out;
  });
}

// A browser-like receive-only H.264 offer (ICE and DTLS values are
// syntactically valid; nothing will ever connect to them).
export const OFFER = [
  'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0',
  'a=group:BUNDLE 0', 'a=msid-semantic: WMS',
  'm=video 9 UDP/TLS/RTP/SAVPF 102', 'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0', 'a=ice-ufrag:abcd',
  'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=fingerprint:sha-256 72:1D:D8:E7:F8:DD:39:A6:F1:5B:E6:50:52:75:BD:DF:07:6F:A7:59:C7:C2:C3:91:A0:AD:29:61:AF:92:71:58',
  'a=setup:actpass', 'a=mid:0', 'a=recvonly', 'a=rtcp-mux',
  'a=rtpmap:102 H264/90000', 'a=rtcp-fb:102 nack pli',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  '',
].join('\r\n');

export async function getJSON(url) {
  const res = await fetch(url, { cache: 'no-store' });
  return { status: res.status, body: await res.json() };
}

// Child processes of this node process: pid -> { comm, pgrp }.
function children() {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d))
      continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;  // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[1]) === process.pid)
      out.set(Number(d), { comm: stat.slice(stat.indexOf('(') + 1,
        stat.lastIndexOf(')')), pgrp: Number(f[2]) });
  }
  return out;
}

// Debian's Chromium, headless, with a throw-away profile.  kill() ends the
// browser the hard way (SIGKILL to its process group: no page unload, no
// DELETE, no RTCP BYE), as a crash or a pulled cable would.
export async function launchBrowser() {
  const chromium = await loadChromium();
  const profile = mkdtempSync(join(tmpdir(), 'dit-serve-chromium-'));
  const before = children();
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    // Chromium hides its host candidates behind mDNS ".local" names, which
    // libnice cannot resolve on a machine without mDNS; ICE then hangs on
    // peer-reflexive candidates learned from incoming checks, a race that
    // sometimes never connects.  Plain host candidates make it deterministic.
    // Chromium also leaves loopback out of ICE unless told otherwise; the
    // server offers only 127.0.0.1 (startServer).
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--allow-loopback-in-peer-connection'],
  });
  const started = [...children()].find(([pid, c]) => !before.has(pid) &&
    c.comm.startsWith('chrom'));
  let killed = false;
  return {
    context,
    kill() {
      if (!started)
        fail('cannot find the Chromium process this test started');
      const [pid, { pgrp }] = started;
      killed = true;
      // Playwright starts Chromium as a process group leader; its
      // renderer and GPU processes go with it.
      process.kill(pgrp === pid ? -pid : pid, 'SIGKILL');
      return pid;
    },
    async close() {
      if (!killed)
        await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function artifactDir() {
  return process.env.DIT_SERVE_ARTIFACTS || tmpdir();
}

// Run main(), always stopping what it started; exit 0/1.
export async function run(main) {
  const cleanups = [];
  try {
    await main((fn) => cleanups.unshift(fn));
  } catch (e) {
    if (!process.exitCode)
      console.error(e);
    process.exitCode = 1;
  }
  for (const fn of cleanups) {
    try {
      await fn();
    } catch (e) {
      console.error(e);
      process.exitCode = 1;
    }
  }
  process.exit(process.exitCode || 0);
}
