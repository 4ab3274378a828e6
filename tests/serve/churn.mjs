// Viewers join and leave in a loop while the generator runs: two WHEP
// clients that post an offer and DELETE it at once, as fast as the server
// answers, and a Chromium page that connects, plays and hangs up over and
// over.  The chunk counter in /stats must never stand still for
// STALL_MS.  A branch linked to the tee before it was running once made the
// tee return FLUSHING upstream, which stopped generation for good.
import { OFFER, check, fail, getJSON, launchBrowser, poll, run, sleep,
  startServer } from './lib.mjs';

const CHURN_MS = 30000;
const STALL_MS = 8000;

await run(async (cleanup) => {
  const browser = await launchBrowser();
  cleanup(() => browser.close());
  const server = await startServer(['--ice-timeout', '200']);
  cleanup(() => server.stop());
  const stats = async () => (await getJSON(server.url + 'stats')).body;
  await poll(async () => (await stats()).chunks >= 2, 60000, 'two chunks');

  const end = Date.now() + CHURN_MS;
  let stalled = null;
  const counts = { offers: 0, plays: 0 };

  // Offer, then hang up at once.
  const offerLoop = async () => {
    while (Date.now() < end && !stalled) {
      const res = await fetch(server.url + 'whep', { method: 'POST',
        headers: { 'Content-Type': 'application/sdp' }, body: OFFER });
      await res.text();
      if (res.status !== 201)
        fail(`POST /whep during the churn: ${res.status}`);
      const del = await fetch(new URL(res.headers.get('Location'), server.url),
        { method: 'DELETE' });
      await del.text();
      counts.offers++;
    }
  };

  // Connect, decode a few frames, hang up.
  const page = await browser.context.newPage();
  await page.goto(server.url);
  const decodedNow = async () => page.evaluate(async () => {
    const v = await window.ditViewer.inboundVideo();
    return v ? v.framesDecoded : 0;
  });
  const pageLoop = async () => {
    while (Date.now() < end && !stalled) {
      await poll(async () => stalled || (await decodedNow()) >= 3, 30000,
        'the page to decode 3 frames');
      await page.click('#hangup');
      counts.plays++;
      await page.click('#connect');
    }
    await page.click('#hangup');
  };

  // The chunk counter must keep moving.
  const watch = async () => {
    let last = await stats(), moved = Date.now();
    while (Date.now() < end && !stalled) {
      await sleep(500);
      const s = await stats();
      if (s.chunks !== last.chunks)
        moved = Date.now();
      else if (Date.now() - moved > STALL_MS)
        stalled = s;
      last = s;
    }
  };

  await Promise.all([offerLoop(), offerLoop(), pageLoop(), watch()]);
  console.log(`churn: ${counts.offers} offers posted and deleted, ` +
    `${counts.plays} plays in the page`);
  if (stalled)
    fail(`the chunk counter stood at ${stalled.chunks} for ${STALL_MS / 1000} s: ` +
      JSON.stringify(stalled));
  check(true, `the chunk counter kept moving for ${CHURN_MS / 1000} s of churn`);
  check(counts.offers >= 40 && counts.plays >= 3,
    'enough joins and leaves to mean something (40 offers, 3 plays)');

  await poll(async () => (await stats()).viewers === 0, 10000, 'no viewers left');
  check(true, 'every viewer freed');
  const c0 = (await stats()).chunks;
  await poll(async () => (await stats()).chunks > c0 + 1, 10000,
    'generation to go on after the churn');
  check((await stats()).output_fps > 0, 'frames still leave the encoder');
});
