// A viewer that vanishes without its DELETE: Chromium is killed (SIGKILL,
// no page unload, no RTCP BYE) while it plays.  With --rtcp-timeout 4 the
// server must notice the silence and free the viewer within a bounded
// time, and with --max-viewers 1 the freed slot must take a new viewer.
// Before the kill, the live viewer must outlast the timeout (its RTCP
// keeps it) and /stats must show its RTCP arriving.
import { OFFER, check, getJSON, launchBrowser, poll, run, sleep,
  startServer, waitDecoded } from './lib.mjs';

const RTCP_TIMEOUT_S = 4;

await run(async (cleanup) => {
  const server = await startServer(['--rtcp-timeout', String(RTCP_TIMEOUT_S),
    '--max-viewers', '1']);
  cleanup(() => server.stop());
  const stats = async () => (await getJSON(server.url + 'stats')).body;
  const browser = await launchBrowser();
  cleanup(() => browser.close());

  const page = await browser.context.newPage();
  await page.goto(server.url);
  await waitDecoded(page, 10, 90000, 'the viewer to decode 10 frames');
  // Alive for longer than the timeout: RTCP keeps it.
  await sleep((RTCP_TIMEOUT_S + 2) * 1000);
  const alive = (await stats()).viewer_list;
  console.log(`viewers while playing: ${JSON.stringify(alive)}`);
  check(alive.length === 1 && alive[0].state === 'connected',
    `a playing viewer outlasts --rtcp-timeout ${RTCP_TIMEOUT_S}`);
  check(alive[0].rtcp_age_s >= 0 && alive[0].rtcp_age_s < RTCP_TIMEOUT_S,
    `its RTCP arrives (last ${alive[0].rtcp_age_s.toFixed(1)} s ago)`);
  let res = await fetch(server.url + 'whep', { method: 'POST',
    headers: { 'Content-Type': 'application/sdp' }, body: OFFER });
  check(res.status === 503, `--max-viewers 1 is full: ${res.status}`);

  const pid = browser.kill();
  const t0 = Date.now();
  console.log(`killed Chromium (pid ${pid})`);
  // Bound: the timeout, the reaper's 1 s tick and a margin for a busy box.
  const bound = (RTCP_TIMEOUT_S + 8) * 1000;
  await poll(async () => (await stats()).viewers === 0, bound,
    `the dead viewer to leave /stats within ${bound / 1000} s`);
  const secs = (Date.now() - t0) / 1000;
  check(true, `dead viewer gone from /stats ${secs.toFixed(1)} s after the kill`);
  check(server.log().includes(`dropped (no RTCP for ${RTCP_TIMEOUT_S} s)`),
    'the server says why it dropped the viewer');

  res = await fetch(server.url + 'whep', { method: 'POST',
    headers: { 'Content-Type': 'application/sdp' }, body: OFFER });
  await res.text();
  check(res.status === 201, `the freed slot takes a new viewer: ${res.status}`);
  const location = res.headers.get('Location');
  res = await fetch(new URL(location, server.url), { method: 'DELETE' });
  check(res.status === 200, `DELETE ${location}: ${res.status}`);
  const c0 = (await stats()).chunks;
  await poll(async () => (await stats()).chunks > c0, 10000, 'generation to go on');
  check(true, 'generation goes on');
});
