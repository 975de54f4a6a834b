import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { newSigningSecret } from '../src/domain/standard-webhooks.js';
import { SignatureError, signStandardWebhook, verifyStandardWebhook } from '../src/sdk/index.js';

interface Vector { source: string; secret: string; msg_id: string; timestamp: number; payload: string; signature: string }
const vectors = (JSON.parse(readFileSync(new URL('../../shared/vectors/signatures.json', import.meta.url), 'utf8')) as { standard_webhooks_v1: Vector[] })
  .standard_webhooks_v1;
const v = vectors[0]!;
const NOW = v.timestamp * 1000;
const headersOf = (x: Vector = v) => ({ 'webhook-id': x.msg_id, 'webhook-timestamp': String(x.timestamp), 'webhook-signature': x.signature });

function rejects(fn: () => unknown, reason: SignatureError['reason']): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SignatureError, `expected a SignatureError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    return true;
  });
}

describe('verifyStandardWebhook: the reference vectors', () => {
  for (const x of vectors) {
    test(x.source, () => {
      assert.deepEqual(verifyStandardWebhook(x.payload, headersOf(x), x.secret, { now: x.timestamp * 1000 }), JSON.parse(x.payload));
      assert.deepEqual(verifyStandardWebhook(Buffer.from(x.payload), headersOf(x), x.secret, { now: x.timestamp * 1000 }), JSON.parse(x.payload));
    });
  }

  test('a secret without the whsec_ prefix is the same key', () => {
    assert.ok(verifyStandardWebhook(v.payload, headersOf(), v.secret.slice('whsec_'.length), { now: NOW }));
  });

  test('WHATWG Headers and mixed-case or array-valued plain headers are read alike', () => {
    assert.ok(verifyStandardWebhook(v.payload, new Headers(headersOf()), v.secret, { now: NOW }));
    const mixed = { 'Webhook-Id': v.msg_id, 'WEBHOOK-TIMESTAMP': [String(v.timestamp)], 'Webhook-Signature': [`v1,${'A'.repeat(44)}`, v.signature] };
    assert.ok(verifyStandardWebhook(v.payload, mixed, v.secret, { now: NOW }));
  });
});

describe('verifyStandardWebhook: the timestamp tolerance, both ways', () => {
  test('default 300 s: accepted at the edges, refused one second past them', () => {
    assert.ok(verifyStandardWebhook(v.payload, headersOf(), v.secret, { now: NOW + 300_000 }));
    assert.ok(verifyStandardWebhook(v.payload, headersOf(), v.secret, { now: NOW - 300_000 }));
    rejects(() => verifyStandardWebhook(v.payload, headersOf(), v.secret, { now: NOW + 301_000 }), 'expired');
    rejects(() => verifyStandardWebhook(v.payload, headersOf(), v.secret, { now: NOW - 301_000 }), 'expired');
  });

  test('toleranceSeconds narrows or widens it', () => {
    rejects(() => verifyStandardWebhook(v.payload, headersOf(), v.secret, { now: NOW + 11_000, toleranceSeconds: 10 }), 'expired');
    rejects(() => verifyStandardWebhook(v.payload, headersOf(), v.secret, { now: NOW - 11_000, toleranceSeconds: 10 }), 'expired');
    assert.ok(verifyStandardWebhook(v.payload, headersOf(), v.secret, { now: NOW + 3_600_000, toleranceSeconds: 3600 }));
  });

  test('without `now`, the real clock is used: an old vector is expired', () => {
    rejects(() => verifyStandardWebhook(v.payload, headersOf(), v.secret), 'expired');
  });
});

describe('verifyStandardWebhook: bad or missing headers are format errors', () => {
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
    test(`missing ${name}`, () => {
      const h: Record<string, string> = headersOf();
      delete h[name];
      rejects(() => verifyStandardWebhook(v.payload, h, v.secret, { now: NOW }), 'format');
      rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), [name]: '' }, v.secret, { now: NOW }), 'format');
    });
  }

  for (const ts of ['abc', '1614265330.5', '-1614265330', '1e9', ' ']) {
    test(`webhook-timestamp ${JSON.stringify(ts)}`, () => {
      rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-timestamp': ts }, v.secret, { now: NOW }), 'format');
    });
  }

  test('two different webhook-id values', () => {
    rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-id': [v.msg_id, 'msg_other'] }, v.secret, { now: NOW }), 'format');
  });
});

describe('verifyStandardWebhook: signatures', () => {
  test('several signatures in the header: any v1 match is enough; other versions are skipped', () => {
    const other = signStandardWebhook(newSigningSecret(), v.msg_id, v.timestamp, v.payload);
    for (const header of [`${other} ${v.signature}`, `${v.signature} ${other}`, `v1a,${v.signature.slice(3)} ${v.signature}`, `${other}, ${v.signature}`]) {
      assert.ok(verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-signature': header }, v.secret, { now: NOW }), header);
    }
    rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-signature': other }, v.secret, { now: NOW }), 'signature');
    rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-signature': `v2,${v.signature.slice(3)}` }, v.secret, { now: NOW }), 'signature');
    rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-signature': v.signature.slice(3) }, v.secret, { now: NOW }), 'signature');
  });

  test('several secrets (rotation): any one that matches is enough', () => {
    const fresh = newSigningSecret();
    assert.ok(verifyStandardWebhook(v.payload, headersOf(), [fresh, v.secret], { now: NOW }));
    assert.ok(verifyStandardWebhook(v.payload, headersOf(), [v.secret, fresh], { now: NOW }));
    rejects(() => verifyStandardWebhook(v.payload, headersOf(), [fresh, newSigningSecret()], { now: NOW }), 'signature');
  });

  test('a tampered body, id or timestamp does not verify', () => {
    rejects(() => verifyStandardWebhook(v.payload.replace('2432232314', '2432232315'), headersOf(), v.secret, { now: NOW }), 'signature');
    rejects(() => verifyStandardWebhook(`${v.payload} `, headersOf(), v.secret, { now: NOW }), 'signature');
    rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-id': `${v.msg_id}x` }, v.secret, { now: NOW }), 'signature');
    rejects(() => verifyStandardWebhook(v.payload, { ...headersOf(), 'webhook-timestamp': String(v.timestamp + 1) }, v.secret, { now: NOW }), 'signature');
  });

  test('a correctly signed body that is not a JSON object is a payload error', () => {
    const secret = newSigningSecret();
    for (const body of ['not json', '[1,2]', 'null']) {
      const h = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(v.timestamp), 'webhook-signature': signStandardWebhook(secret, 'msg_1', v.timestamp, body) };
      rejects(() => verifyStandardWebhook(body, h, secret, { now: NOW }), 'payload');
    }
  });

  test('no secret, or one with no key bytes, is a configuration error, not a pass', () => {
    assert.throws(() => verifyStandardWebhook(v.payload, headersOf(), [], { now: NOW }), TypeError);
    assert.throws(() => verifyStandardWebhook(v.payload, headersOf(), 'whsec_', { now: NOW }), TypeError);
  });
});
