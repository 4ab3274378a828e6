// Control API of dit-serve without a browser: health, stats, prompt (text,
// weighted list and embeddings file), seed, LoRA list, the error cases (malformed JSON
// 400, body over 64 KiB 413, unknown route 404, wrong method 405, wrong
// content type 415, unusable embeddings or prompt list 422), and a WHEP
// session from a hand-written
// offer that is hung up with DELETE (viewer count back to 0, a second
// DELETE 404).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OFFER, check, getJSON, poll, run, startServer } from './lib.mjs';

// A float32 safetensors file with one tensor "prompt_embeds" [rows, dim].
function writeEmbeds(path, rows, dim) {
  const data = Buffer.alloc(rows * dim * 4);
  for (let i = 0; i < rows * dim; i++)
    data.writeFloatLE(Math.sin(i) * 0.1, i * 4);
  let header = JSON.stringify({ prompt_embeds: { dtype: 'F32',
    shape: [rows, dim], data_offsets: [0, data.length] } });
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(path, Buffer.concat([len, Buffer.from(header), data]));
}

await run(async (cleanup) => {
  const server = await startServer(['--connect-timeout', '60']);
  cleanup(() => server.stop());
  const url = (p) => server.url + p;
  const post = (p, body, type = 'application/json') =>
    fetch(url(p), { method: 'POST', headers: { 'Content-Type': type }, body });
  const expectError = async (res, status, what) => {
    const body = await res.json().catch(() => null);
    check(res.status === status && body && typeof body.error === 'string',
      `${what}: ${res.status} ${body && body.error}`);
  };
  const tmp = mkdtempSync(join(tmpdir(), 'dit-serve-api-'));
  cleanup(() => rmSync(tmp, { recursive: true, force: true }));

  const health = await getJSON(url('health'));
  check(health.status === 200 && health.body.status === 'ok', 'GET /health');
  const s0 = await poll(async () => {
    const s = (await getJSON(url('stats'))).body;
    return s.chunks >= 2 ? s : null;
  }, 60000, 'two chunks');
  for (const key of ['fps', 'output_fps', 'chunk_ms', 'mesh_ms', 'chunks',
    'prompt_epoch', 'cache_epoch', 'seed', 'viewers', 'queues', 'viewer_list'])
    check(key in s0, `/stats has ${key}`);
  check(s0.mesh_ms === 0 && s0.viewers === 0 && s0.seed === 42,
    'no mesh, no viewers, seed 42 at start');

  // Errors.
  await expectError(await post('prompt', '{"prompt": '), 400, 'malformed JSON');
  await expectError(await post('prompt', '[1, 2]'), 400, 'JSON that is not an object');
  await expectError(await post('prompt', '{"prompt": "a", "embeds": "/x"}'), 400,
    'prompt and embeds together');
  await expectError(await post('prompt', '{"prompt": 3}'), 400, 'prompt not a string');
  await expectError(await post('seed', '{"seed": -1}'), 400, 'negative seed');
  await expectError(await post('seed', '{"seed": "7"}'), 400, 'seed as a string');
  await expectError(await post('prompt', JSON.stringify({ prompt: 'x'.repeat(70000) })),
    413, 'body over 64 KiB');
  await expectError(await fetch(url('nothing/here')), 404, 'unknown route');
  await expectError(await fetch(url('stats'), { method: 'DELETE' }), 405, 'DELETE /stats');
  await expectError(await fetch(url('prompt')), 405, 'GET /prompt');
  await expectError(await post('whep', OFFER, 'text/plain'), 415, 'offer without application/sdp');
  await expectError(await post('whep', 'not sdp at all', 'application/sdp'), 400, 'garbage offer');
  await expectError(await post('whep', OFFER.replace(/H264/g, 'VP8'), 'application/sdp'),
    422, 'offer without H.264');
  await expectError(await post('prompt', JSON.stringify({ embeds: join(tmp, 'missing.safetensors') })),
    422, 'embeddings file that does not exist');
  writeEmbeds(join(tmp, 'narrow.safetensors'), 4, 32);
  await expectError(await post('prompt', JSON.stringify({ embeds: join(tmp, 'narrow.safetensors') })),
    422, 'embeddings of the wrong width');
  await expectError(await fetch(url('whep/nope'), { method: 'DELETE' }), 404, 'DELETE of an unknown viewer');
  // Weighted prompt lists the text encoder would refuse: refused here, at
  // once, with the reason.
  const badList = async (prompt, reason, what) => {
    const r = await post('prompt', JSON.stringify({ prompt }));
    const body = await r.json().catch(() => null);
    check(r.status === 422 && body && reason.test(body.error),
      `${what}: ${r.status} ${body && body.error}`);
  };
  await badList('a koi pond:0.7|a red fox:-0.3', /weight -0\.3/, 'negative weight in a prompt list');
  await badList('a koi pond:0|a red fox:0', /sum to 0/, 'prompt list weights summing to 0');
  await badList(Array.from({ length: 9 }, (_, i) => `p${i}:1`).join('|'), /9 parts; at most 8/,
    'prompt list of 9 parts');
  check((await getJSON(url('health'))).status === 200, 'still healthy after the errors');

  // Prompts and seed change what ditgenerate reports.
  const e0 = (await getJSON(url('stats'))).body.prompt_epoch;
  writeEmbeds(join(tmp, 'ok.safetensors'), 4, 64);
  let res = await post('prompt', JSON.stringify({ embeds: join(tmp, 'ok.safetensors') }));
  check(res.status === 200, `POST /prompt with an embeddings file: ${res.status}`);
  const e1 = await poll(async () => {
    const e = (await getJSON(url('stats'))).body.prompt_epoch;
    return e > e0 ? e : 0;
  }, 20000, 'the prompt epoch to move after the embeddings');
  res = await post('prompt', JSON.stringify({ prompt: 'a lighthouse at dusk:0.6|a red fox:0.4' }));
  check(res.status === 200, `POST /prompt with a weighted list: ${res.status}`);
  res = await post('prompt', JSON.stringify({ prompt: 'a lighthouse at dusk' }));
  check(res.status === 200, `POST /prompt with text: ${res.status}`);
  await poll(async () => (await getJSON(url('stats'))).body.prompt_epoch > e1, 20000,
    'the prompt epoch to move after the text prompt');
  check(true, 'prompt epoch moves with each prompt');
  res = await post('seed', '{"seed": 7}');
  check(res.status === 200, 'POST /seed');
  await poll(async () => (await getJSON(url('stats'))).body.seed === 7, 20000,
    'the chunks to carry seed 7');
  check(true, 'chunks carry the new seed');

  // LoRAs: a list is taken and reported; unusable ones are refused at once
  // with the reason, and the list in force stays.
  res = await post('lora', JSON.stringify({ lora: '@synthetic:4:0.5' }));
  check(res.status === 200, `POST /lora: ${res.status}`);
  let lora = (await getJSON(url('lora'))).body;
  check(lora.lora === '@synthetic:4:0.5' && lora.mode === 'merge',
    `GET /lora: ${JSON.stringify(lora)}`);
  await expectError(await post('lora', '{"lora": 3}'), 400, 'lora not a string');
  await expectError(await fetch(url('lora'), { method: 'DELETE' }), 405, 'DELETE /lora');
  const badLora = async (list, reason, what) => {
    const r = await post('lora', JSON.stringify({ lora: list }));
    const body = await r.json().catch(() => null);
    check(r.status === 422 && body && reason.test(body.error),
      `${what}: ${r.status} ${body && body.error}`);
  };
  await badLora(join(tmp, 'missing.safetensors') + ':0.8', /missing\.safetensors/,
    'LoRA file that does not exist');
  await badLora('@synthetic:4:abc', /not a number/, 'LoRA strength that is not a number');
  await badLora(join(tmp, 'ok.safetensors'), /prompt_embeds/,
    'a safetensors file that is not a LoRA (its key named)');
  lora = (await getJSON(url('lora'))).body;
  check(lora.lora === '@synthetic:4:0.5', `the list in force stays: ${lora.lora}`);
  res = await post('lora', JSON.stringify({ lora: '' }));
  check(res.status === 200 && (await getJSON(url('lora'))).body.lora === '',
    'POST /lora with "" removes the LoRAs');

  // WHEP session from a hand-written offer, then hang up.
  res = await post('whep', OFFER, 'application/sdp');
  const answer = await res.text();
  const location = res.headers.get('Location');
  check(res.status === 201 && res.headers.get('Content-Type').startsWith('application/sdp'),
    `POST /whep: ${res.status} ${res.headers.get('Content-Type')}`);
  check(/^\/whep\/\S+$/.test(location || ''), `Location ${location}`);
  check(/a=sendonly/.test(answer) && /H264\/90000/.test(answer) &&
    /a=candidate:/.test(answer), 'the answer sends H.264 and carries ICE candidates');
  // Candidate lines: foundation component transport priority ADDRESS port.
  const addrs = answer.split('\r\n').filter((l) => l.startsWith('a=candidate:'))
    .map((l) => l.split(' ')[4]);
  check(addrs.length > 0 && addrs.every((a) => a === '127.0.0.1'),
    `--ice-address 127.0.0.1 keeps every candidate on loopback (${addrs.join(', ')})`);
  check((await getJSON(url('stats'))).body.viewers === 1, 'one viewer after the offer');
  res = await fetch(new URL(location, server.url), { method: 'DELETE' });
  check(res.status === 200, `DELETE ${location}: ${res.status}`);
  check((await getJSON(url('stats'))).body.viewers === 0, 'viewer freed (viewers 1 -> 0)');
  res = await fetch(new URL(location, server.url), { method: 'DELETE' });
  check(res.status === 404, `second DELETE: ${res.status}`);
  const c0 = (await getJSON(url('stats'))).body.chunks;
  let last;
  try {
    await poll(async () => (last = (await getJSON(url('stats'))).body).chunks > c0,
      30000, 'generation to go on');
  } finally {
    console.log(`stats at the end: ${JSON.stringify(last)}`);
  }
  check(true, 'generation goes on after the API calls');
});
