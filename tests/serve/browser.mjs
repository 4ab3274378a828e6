// Browser end to end: dit-serve (tiny model, CPU) on loopback, Debian's
// Chromium headless opens the viewer page.  Asserted from the page itself:
// frames decoded (getStats) > 30, a decoded frame drawn to a canvas is not
// uniform, a prompt sent through the page's prompt box changes the prompt
// epoch in /stats, a prompt list the server refuses shows its reason in the
// page, and hanging up frees the viewer.  A screenshot is saved.
import { join } from 'node:path';
import { artifactDir, check, getJSON, launchBrowser, poll, run, sleep,
  startServer, viewerDiagnostics, waitDecoded } from './lib.mjs';

await run(async (cleanup) => {
  const browser0 = await launchBrowser();
  cleanup(() => browser0.close());
  const server = await startServer();
  cleanup(() => server.stop());

  const page = await browser0.context.newPage();
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  await page.goto(server.url);

  const t0 = Date.now();
  const decoded = await waitDecoded(page, 30, 90000,
    'more than 30 decoded frames');
  console.log(`first 30 frames decoded ${(Date.now() - t0) / 1000} s after load`);
  check(true, 'framesDecoded > 30 in the page');
  const pairs = (await viewerDiagnostics(page)).pairs
    .filter((p) => p.nominated && p.state === 'succeeded');
  console.log(`ICE pairs in use: ${JSON.stringify(pairs)}`);
  check(pairs.length > 0 && pairs.every((p) => p.local.includes('127.0.0.1:')
    && p.remote.includes('127.0.0.1:')), 'the viewer connects over loopback');

  // Frame rate as the browser sees it, over 5 s.
  const n0 = await decoded(), w0 = Date.now();
  await sleep(5000);
  const fps = ((await decoded()) - n0) * 1000 / (Date.now() - w0);
  console.log(`browser frame rate: ${fps.toFixed(1)} fps (frames decoded / s over 5 s)`);
  check(fps > 4, `frames keep arriving (${fps.toFixed(1)} fps)`);

  // A decoded frame on a canvas: the tiny model's output is structured
  // noise, so a working decoder gives many distinct values.
  const pixels = await page.evaluate(() => {
    const video = document.getElementById('video');
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const g = canvas.getContext('2d');
    g.drawImage(video, 0, 0);
    const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let min = 255, max = 0, sum = 0, sum2 = 0;
    const distinct = new Set();
    for (let i = 0; i < d.length; i += 4) {
      const y = (d[i] * 299 + d[i + 1] * 587 + d[i + 2] * 114) / 1000;
      min = Math.min(min, y);
      max = Math.max(max, y);
      sum += y;
      sum2 += y * y;
      distinct.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    const n = d.length / 4;
    return { w: canvas.width, h: canvas.height, min, max,
      std: Math.sqrt(Math.max(sum2 / n - (sum / n) ** 2, 0)),
      distinct: distinct.size };
  });
  console.log(`canvas frame: ${JSON.stringify(pixels)}`);
  check(pixels.w === 64 && pixels.h === 64, 'video is 64x64');
  check(pixels.std > 5 && pixels.max - pixels.min > 30 && pixels.distinct > 50,
    'a decoded frame is not uniform');

  check(!(await page.textContent('body')).includes('Until the text encoder'),
    'no stale note about a missing text encoder');
  // A prompt list the server refuses: the page shows the server's reason.
  await page.fill('#prompt', 'a red fox:-1|snow:1');
  await page.click('#prompt-send');
  const refused = await poll(async () => {
    const t = await page.textContent('#status');
    return t.startsWith('prompt:') ? t : null;
  }, 10000, 'the page to report the refused prompt');
  check(/weight -1/.test(refused), `the page shows why: "${refused}"`);

  // Prompt through the page's own form.
  const epoch0 = (await getJSON(server.url + 'stats')).body.prompt_epoch;
  check(epoch0 >= 1, `prompt epoch starts at ${epoch0}`);
  await page.fill('#prompt', 'a red fox running through snow');
  await page.click('#prompt-send');
  await poll(async () => (await page.textContent('#status')) === 'prompt sent',
    10000, 'the page to report the prompt as sent');
  const epoch1 = await poll(async () => {
    const e = await page.evaluate(async () =>
      (await (await fetch('stats')).json()).prompt_epoch);
    return e > epoch0 ? e : 0;
  }, 30000, 'the prompt epoch to change');
  check(epoch1 > epoch0, `prompt epoch ${epoch0} -> ${epoch1} after the page's prompt`);
  check((await decoded()) > 0, 'video still decoding after the prompt change');

  const shot = join(artifactDir(), 'dit-serve-browser.png');
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot}`);

  // Hang up mid-stream from the page: the server frees the viewer.
  check((await getJSON(server.url + 'stats')).body.viewers === 1,
    'one viewer while playing');
  await page.click('#hangup');
  await poll(async () => (await getJSON(server.url + 'stats')).body.viewers === 0,
    10000, 'the viewer count to drop after hang-up');
  check(true, 'viewer freed after hang-up (viewers 1 -> 0)');
  const after = (await getJSON(server.url + 'stats')).body.chunks;
  await sleep(2000);
  check((await getJSON(server.url + 'stats')).body.chunks > after,
    'generation goes on with no viewer');
});
