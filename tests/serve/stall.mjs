// Two viewers, one stalled: viewer 2 completes the WHEP exchange but never
// applies the answer (so it never connects), and the server is told with
// DIT_SERVE_STALL_VIEWER=2 to block that viewer's branch right after its
// queue, as a peer that stops reading would.  The healthy viewer must keep
// decoding, the generator must keep its rate, the stalled viewer's queue
// must be the one that drops, and hanging it up must free it.
import { check, getJSON, launchBrowser, poll, run, sleep,
  startServer, waitDecoded } from './lib.mjs';

await run(async (cleanup) => {
  const browser = await launchBrowser();
  cleanup(() => browser.close());
  const server = await startServer([], { DIT_SERVE_STALL_VIEWER: '2' });
  cleanup(() => server.stop());
  const stats = async () => (await getJSON(server.url + 'stats')).body;

  const good = await browser.context.newPage();
  await good.goto(server.url);
  const decoded = await waitDecoded(good, 30, 90000,
    'the first viewer to decode 30 frames');
  check(true, 'viewer 1 decoding');

  // Viewer 2: a raw WHEP client that never acknowledges the answer.
  const stalled = await browser.context.newPage();
  await stalled.goto(server.url + 'health');
  const offer = await stalled.evaluate(async () => {
    const pc = new RTCPeerConnection();
    window.keep = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => setTimeout(r, 1000));
    const res = await fetch('/whep', { method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      // No candidates: the server's connectivity checks have nowhere to
      // go, so this viewer stays "connecting" (a peer gone silent) instead
      // of failing ICE at once and being reaped before the measurement.
      body: pc.localDescription.sdp.split('\r\n')
        .filter((l) => !l.startsWith('a=candidate:')).join('\r\n') });
    return { status: res.status, location: res.headers.get('Location') };
  });
  check(offer.status === 201 && offer.location, `stalled viewer got 201 and ${offer.location}`);
  await poll(async () => (await stats()).viewers === 2, 10000, 'two viewers');

  // Ten seconds with the stalled viewer in place.
  const s0 = await stats(), d0 = await decoded(), t0 = Date.now();
  await sleep(10000);
  const s1 = await stats(), d1 = await decoded(), secs = (Date.now() - t0) / 1000;
  const fps = (d1 - d0) / secs;
  const chunkRate = (s1.chunks - s0.chunks) / secs;
  console.log(`healthy viewer: ${fps.toFixed(1)} fps; generator: ` +
    `${chunkRate.toFixed(2)} chunks/s; output ${s1.output_fps.toFixed(1)} fps`);
  console.log(`viewers: ${JSON.stringify(s1.viewer_list)}`);
  check(fps > 6, `healthy viewer keeps decoding (${fps.toFixed(1)} fps)`);
  check(chunkRate > 0.5, `generator keeps its rate (${chunkRate.toFixed(2)} chunks/s; 16 fps is 1.33)`);
  check(s1.output_fps > 8, `encoder output keeps its rate (${s1.output_fps.toFixed(1)} fps)`);
  const id = offer.location.split('/').pop();
  const bad = s1.viewer_list.find((v) => v.id === id);
  const ok = s1.viewer_list.find((v) => v.id !== id);
  check(bad && bad.dropped > 0 && bad.queued > 0,
    `the stalled viewer's own queue fills and drops (queued ${bad && bad.queued}, dropped ${bad && bad.dropped})`);
  check(ok && ok.dropped === 0, 'the healthy viewer drops nothing');

  // Hang up the stalled viewer mid-stream.
  const del = await fetch(new URL(offer.location, server.url), { method: 'DELETE' });
  check(del.status === 200, `DELETE of the stalled viewer: ${del.status}`);
  await poll(async () => (await stats()).viewers === 1, 10000, 'one viewer left');
  check(true, 'stalled viewer freed (viewers 2 -> 1)');
  const d2 = await decoded();
  await sleep(3000);
  check((await decoded()) > d2 + 10, 'the healthy viewer still decodes after the hang-up');
});
