// Live video-to-video through dit-serve (tiny model, CPU): the output keeps
// the frame rate of the video going in.  Two live sources: --source
// videotestsrc (a live test pattern made at the server's 16 fps) and a
// camera-like source, a 'pipeline:' fragment with a live videotestsrc at
// 30 fps, which takes the camera's path (videorate down to the server's
// 16 fps, its leaky queue found live from its latency).  For each, the
// encoded frame rate is measured from /stats (the frames counter over a
// window) and the decoded frame rate in Chromium (framesDecoded over the
// same window); both must reach 80% of 16 fps.  Before the pacing honoured
// the pipeline latency, a live source gave one frame per latency, about
// 1 fps.
import { check, getJSON, launchBrowser, poll, run, sleep, startServer,
  waitDecoded } from './lib.mjs';

const WINDOW_MS = 6000;

async function measure(browser, name, fps, args) {
  // fps: the rate the server generates at (its --fps).
  const server = await startServer(args);
  try {
    const stats = async () => (await getJSON(server.url + 'stats')).body;
    const page = await browser.context.newPage();
    await page.goto(server.url);
    const decoded = await waitDecoded(page, 2 * fps, 90000,
      `${name}: ${2 * fps} decoded frames`);
    // Settle: the first chunks are slower (warm-up, pacing catching up).
    await sleep(2000);
    const s0 = await stats(), d0 = await decoded(), t0 = Date.now();
    await sleep(WINDOW_MS);
    const s1 = await stats(), d1 = await decoded();
    const secs = (Date.now() - t0) / 1000;
    const served = (s1.frames - s0.frames) / secs;
    const shown = (d1 - d0) / secs;
    console.log(`${name}: server at ${fps} fps; /stats ${served.toFixed(1)} fps ` +
      `(${s1.chunks - s0.chunks} chunks, output_fps ${s1.output_fps}); ` +
      `browser ${shown.toFixed(1)} fps; queues ${JSON.stringify(s1.queues)}`);
    check(s1.framerate === fps, `${name}: the server runs at ${fps} fps`);
    check(/the source is live/.test(server.log()), `${name}: found to be live`);
    check(served >= 0.8 * fps,
      `${name}: /stats frame rate ${served.toFixed(1)} reaches ${fps} fps`);
    check(shown >= 0.8 * fps,
      `${name}: browser frame rate ${shown.toFixed(1)} reaches ${fps} fps`);
    await page.click('#hangup');
    await poll(async () => (await stats()).viewers === 0, 10000,
      `${name}: the viewer to leave`);
    await page.close();
  } finally {
    await server.stop();
  }
}

await run(async (cleanup) => {
  const browser = await launchBrowser();
  cleanup(() => browser.close());
  await measure(browser, 'videotestsrc', 16, ['--source', 'videotestsrc']);
  await measure(browser, 'camera-like at 30 fps', 16, ['--source',
    'pipeline:videotestsrc is-live=true ! capsfilter caps=video/x-raw,framerate=30/1']);
});
