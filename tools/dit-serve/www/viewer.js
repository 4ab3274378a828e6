// Viewer page of dit-serve: a WHEP client (receive-only video), live stats
// from /stats and the prompt box.  No build step; exposes window.ditViewer
// for scripts (the browser tests use it).
'use strict';

const viewer = {
  pc: null,
  resource: null,          // WHEP session URL from the Location header
  lastStats: null,         // last /stats document
  recvFps: 0,
};
window.ditViewer = viewer;

const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
  const el = $('status');
  el.textContent = text;
  el.className = isError ? 'error' : '';
}

function waitIceGathering(pc, ms) {
  if (pc.iceGatheringState === 'complete')
    return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', done);
        resolve();
      }
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

async function connect() {
  if (viewer.pc)
    return;
  setStatus('connecting');
  const pc = new RTCPeerConnection();
  viewer.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (ev) => {
    const video = $('video');
    video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    video.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    $('s-state').textContent = pc.connectionState;
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    // One round trip: send the offer with our candidates in it.
    await waitIceGathering(pc, 2000);
    const res = await fetch('whep', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201)
      throw new Error('WHEP ' + res.status + ': ' + await res.text());
    viewer.resource = new URL(res.headers.get('Location'), res.url).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    setStatus('playing');
  } catch (e) {
    setStatus(String(e.message || e), true);
    hangup();
  }
}

async function hangup() {
  const pc = viewer.pc, resource = viewer.resource;
  viewer.pc = null;
  viewer.resource = null;
  if (pc)
    pc.close();
  if (resource) {
    try {
      await fetch(resource, { method: 'DELETE' });
    } catch (e) { /* the server may be gone already */ }
  }
  $('s-state').textContent = 'closed';
}

// Inbound video statistics of the current connection (null before one).
async function inboundVideo() {
  if (!viewer.pc)
    return null;
  const report = await viewer.pc.getStats();
  let found = null;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video')
      found = s;
  });
  return found;
}
viewer.inboundVideo = inboundVideo;

const fmt = (x, digits) => (typeof x === 'number' ? x.toFixed(digits) : '-');

let lastDecoded = null;
async function pollStats() {
  try {
    const res = await fetch('stats', { cache: 'no-store' });
    const s = await res.json();
    viewer.lastStats = s;
    $('s-fps').textContent = fmt(s.fps, 1);
    $('s-output-fps').textContent = fmt(s.output_fps, 1);
    $('s-chunk-ms').textContent = fmt(s.chunk_ms, 0);
    $('s-mesh-ms').textContent = fmt(s.mesh_ms, 0);
    $('s-queues').textContent = s.queues.generator + ' / ' + s.queues.display +
      ' / ' + s.queues.viewers;
    $('s-chunks').textContent = s.chunks;
    $('s-prompt-epoch').textContent = s.prompt_epoch;
    $('s-cache-epoch').textContent = s.cache_epoch;
    $('s-viewers').textContent = s.viewers;
  } catch (e) {
    setStatus('stats: ' + (e.message || e), true);
  }
  const v = await inboundVideo().catch(() => null);
  if (v) {
    const now = performance.now();
    $('s-decoded').textContent = v.framesDecoded;
    if (lastDecoded)
      viewer.recvFps = (v.framesDecoded - lastDecoded.n) * 1000 / (now - lastDecoded.t);
    lastDecoded = { n: v.framesDecoded, t: now };
    $('s-recv-fps').textContent = fmt(viewer.recvFps, 1);
  }
}

async function sendPrompt(ev) {
  ev.preventDefault();
  const text = $('prompt').value.trim();
  if (!text)
    return;
  try {
    const res = await fetch('prompt', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: text }),
    });
    const body = await res.json();
    if (!res.ok)
      throw new Error(body.error || res.status);
    setStatus('prompt sent');
  } catch (e) {
    setStatus('prompt: ' + (e.message || e), true);
  }
}

$('prompt-form').addEventListener('submit', sendPrompt);
$('connect').addEventListener('click', connect);
$('hangup').addEventListener('click', hangup);
window.addEventListener('pagehide', () => {
  // keepalive lets the DELETE outlive the page.
  if (viewer.resource)
    fetch(viewer.resource, { method: 'DELETE', keepalive: true }).catch(() => {});
});
setInterval(pollStats, 1000);
pollStats();
connect();
