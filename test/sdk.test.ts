import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { hmacHex, signJson } from '../src/domain/signature.js';
import { matchesStandardSignature, newSigningSecret } from '../src/domain/standard-webhooks.js';
import * as sdk from '../src/sdk/index.js';
import { SIGNED_REQUEST_ALGORITHM, SignatureError, signRequest, signStandardWebhook, verifySignedRequest } from '../src/sdk/index.js';

interface Vectors {
  signed_request: { source: string; json: string; secret: string; signed_request: string }[];
  standard_webhooks_v1: { source: string; secret: string; msg_id: string; timestamp: number; payload: string; signature: string }[];
}
const vectors = JSON.parse(readFileSync(new URL('../../shared/vectors/signatures.json', import.meta.url), 'utf8')) as Vectors;

type Reason = SignatureError['reason'];
function rejects(fn: () => unknown, reason: Reason): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SignatureError, `expected a SignatureError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    assert.equal(err.name, 'SignatureError');
    return true;
  });
}

const SECRET = 'client-secret';
const NOW = Date.parse('2026-11-22T10:00:00Z');
const payload = { channel: 'client.create', obj: { client: { id: 'c1', name: 'Äcme ✓' } }, issued_at: '2026-11-22T10:00:00Z', algorithm: 'HMAC-SHA256' };
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o), 'utf8').toString('base64url');

describe('signature vectors', () => {
  test('the vector file has vectors of both kinds', () => {
    assert.ok(vectors.signed_request.length >= 1);
    assert.ok(vectors.standard_webhooks_v1.length >= 1);
  });

  for (const v of vectors.signed_request) {
    test(`signed_request: ${v.source}`, () => {
      assert.equal(signJson(v.json, v.secret), v.signed_request);
      assert.equal(signRequest(JSON.parse(v.json), v.secret), v.signed_request);
      assert.deepEqual(verifySignedRequest(v.signed_request, v.secret), JSON.parse(v.json));
    });
  }

  for (const v of vectors.standard_webhooks_v1) {
    test(`standard_webhooks_v1: ${v.source}`, () => {
      assert.equal(signStandardWebhook(v.secret, v.msg_id, v.timestamp, v.payload), v.signature);
      assert.equal(matchesStandardSignature(v.secret, v.msg_id, v.timestamp, v.payload, v.signature), true);
      assert.equal(matchesStandardSignature(v.secret, v.msg_id, v.timestamp, v.payload.replace('2432232314', '2432232315'), v.signature), false);
      assert.equal(matchesStandardSignature(v.secret, v.msg_id, v.timestamp, `${v.payload} `, v.signature), false);
      assert.equal(matchesStandardSignature(v.secret, `${v.msg_id}x`, v.timestamp, v.payload, v.signature), false);
      assert.equal(matchesStandardSignature(v.secret, v.msg_id, v.timestamp + 1, v.payload, v.signature), false);
      assert.equal(matchesStandardSignature(newSigningSecret(), v.msg_id, v.timestamp, v.payload, v.signature), false);
    });
  }
});

describe('signRequest / verifySignedRequest', () => {
  test('round trip, with non-ASCII text', () => {
    const signed = signRequest(payload, SECRET);
    assert.match(signed, /^[0-9a-f]{64}\.[A-Za-z0-9_-]+$/);
    assert.equal(signed, `${hmacHex(b64(payload), SECRET)}.${b64(payload)}`);
    assert.deepEqual(verifySignedRequest(signed, SECRET), payload);
    assert.equal(SIGNED_REQUEST_ALGORITHM, 'HMAC-SHA256');
  });

  test('a payload without algorithm is accepted', () => {
    assert.deepEqual(verifySignedRequest(signRequest({ a: 1 }, SECRET), SECRET), { a: 1 });
  });

  test('tampered payload', () => {
    const [sig] = signRequest(payload, SECRET).split('.');
    rejects(() => verifySignedRequest(`${sig}.${b64({ ...payload, channel: 'client.delete' })}`, SECRET), 'signature');
  });

  test('tampered signature and wrong secret', () => {
    const signed = signRequest(payload, SECRET);
    const flipped = (signed[0] === 'a' ? 'b' : 'a') + signed.slice(1);
    rejects(() => verifySignedRequest(flipped, SECRET), 'signature');
    rejects(() => verifySignedRequest(signed, 'other'), 'signature');
    rejects(() => verifySignedRequest(signed, []), 'signature');
  });

  test('bad format', () => {
    const signed = signRequest(payload, SECRET);
    const [sig, body] = signed.split('.') as [string, string];
    for (const bad of ['', 'nodot', `.${body}`, `${sig}.`, `${sig.slice(2)}.${body}`, `${sig.toUpperCase()}.${body}`,
      `${sig}.${body}=`, `${sig}.${body}.x`, `${sig}.${body.replace(/_|-/, '/')}x+`, ` ${signed}`]) {
      rejects(() => verifySignedRequest(bad, SECRET), 'format');
    }
    rejects(() => verifySignedRequest(42 as unknown as string, SECRET), 'format');
  });

  test('a correctly signed payload that is not a JSON object', () => {
    rejects(() => verifySignedRequest(signJson('[1,2]', SECRET), SECRET), 'payload');
    rejects(() => verifySignedRequest(signJson('"text"', SECRET), SECRET), 'payload');
    rejects(() => verifySignedRequest(signJson('null', SECRET), SECRET), 'payload');
    rejects(() => verifySignedRequest(signJson('{not json', SECRET), SECRET), 'payload');
  });

  test('wrong algorithm', () => {
    rejects(() => verifySignedRequest(signRequest({ ...payload, algorithm: 'HMAC-SHA1' }, SECRET), SECRET), 'algorithm');
    rejects(() => verifySignedRequest(signRequest({ ...payload, algorithm: 'hmac-sha256' }, SECRET), SECRET), 'algorithm');
    rejects(() => verifySignedRequest(signRequest({ ...payload, algorithm: null }, SECRET), SECRET), 'algorithm');
  });

  test('maxAgeSeconds with an injected now', () => {
    const signed = signRequest(payload, SECRET);
    assert.deepEqual(verifySignedRequest(signed, SECRET, { maxAgeSeconds: 300, now: NOW + 300_000 }), payload);
    rejects(() => verifySignedRequest(signed, SECRET, { maxAgeSeconds: 300, now: NOW + 301_000 }), 'expired');
    assert.throws(() => verifySignedRequest(signed, SECRET, { maxAgeSeconds: 60, now: NOW + 3_600_000 }), { message: 'payload is 3600s old, more than 60s' });
    assert.deepEqual(verifySignedRequest(signed, SECRET, { maxAgeSeconds: 0, now: NOW }), payload);
  });

  test('maxAgeSeconds needs a valid issued_at', () => {
    rejects(() => verifySignedRequest(signRequest({ a: 1 }, SECRET), SECRET, { maxAgeSeconds: 60, now: NOW }), 'expired');
    rejects(() => verifySignedRequest(signRequest({ issued_at: 'yesterday' }, SECRET), SECRET, { maxAgeSeconds: 60, now: NOW }), 'expired');
    rejects(() => verifySignedRequest(signRequest({ issued_at: NOW }, SECRET), SECRET, { maxAgeSeconds: 60, now: NOW }), 'expired');
  });

  test('without maxAgeSeconds an old payload is accepted', () => {
    const old = { ...payload, issued_at: '2000-01-01T00:00:00Z' };
    assert.deepEqual(verifySignedRequest(signRequest(old, SECRET), SECRET), old);
  });

  test('several secrets (rotation): any one of them verifies', () => {
    const signed = signRequest(payload, 'old-secret');
    assert.deepEqual(verifySignedRequest(signed, ['new-secret', 'old-secret']), payload);
    assert.deepEqual(verifySignedRequest(signRequest(payload, 'new-secret'), ['new-secret', 'old-secret']), payload);
    rejects(() => verifySignedRequest(signed, ['new-secret', 'other']), 'signature');
  });

  test('the signature is checked before the payload is read', () => {
    const forged = `${'0'.repeat(64)}.${b64({ ...payload, algorithm: 'none' })}`;
    rejects(() => verifySignedRequest(forged, SECRET), 'signature');
  });
});

describe('Standard Webhooks', () => {
  const secret = newSigningSecret();
  const body = '{"type":"client.create"}';

  test('newSigningSecret is whsec_ + 32 base64 bytes, random', () => {
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(Buffer.from(secret.slice(6), 'base64').length, 32);
    assert.notEqual(newSigningSecret(), secret);
  });

  test('signature header format and a space-separated list of signatures', () => {
    const sig = signStandardWebhook(secret, 'dlv_1', 1_700_000_000, body);
    assert.match(sig, /^v1,[A-Za-z0-9+/]{43}=$/);
    const other = signStandardWebhook(newSigningSecret(), 'dlv_1', 1_700_000_000, body);
    assert.equal(matchesStandardSignature(secret, 'dlv_1', 1_700_000_000, body, `${other} ${sig}`), true);
    assert.equal(matchesStandardSignature(secret, 'dlv_1', 1_700_000_000, body, other), false);
  });

  test('only v1 signatures count', () => {
    const sig = signStandardWebhook(secret, 'dlv_1', 1, body);
    assert.equal(matchesStandardSignature(secret, 'dlv_1', 1, body, sig.replace('v1,', 'v2,')), false);
    assert.equal(matchesStandardSignature(secret, 'dlv_1', 1, body, sig.slice(3)), false);
    assert.equal(matchesStandardSignature(secret, 'dlv_1', 1, body, ''), false);
    assert.equal(matchesStandardSignature(secret, 'dlv_1', 1, body, 'v1,AAAA'), false);
  });
});

describe('the SDK entry point (CONTRACT section 6)', () => {
  test('exports sign/verify for signed_request and a Standard Webhooks signer', () => {
    for (const name of ['signRequest', 'verifySignedRequest', 'SignatureError', 'signStandardWebhook'] as const) {
      assert.equal(typeof sdk[name], 'function', name);
    }
  });

  test('exports a Standard Webhooks verifier', () => {
    const names = Object.keys(sdk).filter((n) => typeof (sdk as Record<string, unknown>)[n] === 'function');
    assert.ok(names.some((n) => /verify|matches/i.test(n) && /standard|webhook/i.test(n)), names.join(', '));
  });

  test('exports Express and Fastify middleware', () => {
    const names = Object.keys(sdk);
    assert.ok(names.some((n) => /express/i.test(n)), names.join(', '));
    assert.ok(names.some((n) => /fastify/i.test(n)), names.join(', '));
  });
});
