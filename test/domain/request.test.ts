import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { buildRequest, isoSeconds, notificationPayload, type NotificationFacts } from '../../src/delivery/request.js';
import type { App, Company, StoredEvent, Subscription } from '../../src/store/types.js';

const app = (signature: App['signature']): App => ({
  id: 'app_1', name: 'A', url: 'https://a.example/', redirect_uris: [], signature, client_id: 'c', client_secret: 'cs', signing_secret: 'whsec_c2VjcmV0',
  public_client: false, created_at: 0,
});
const sub = (id: string, content_type: Subscription['content_type']): Subscription => ({
  id, grant_id: 'g', app_id: 'app_1', user_id: 'u1', company_id: 'co1', channels: ['task.update'], callback_url: 'https://a.example/h',
  resource: null, headers: {}, content_type, created_at: 0, updated_at: 0,
});
const event: StoredEvent = {
  id: 'evt_1', company_id: 'co1', channel: 'task.update', object: { id: 't1', title: 'é "quoted" \u2028', n: [1, { deep: null }] },
  links: [{ rel: 'self', href: 'https://crm.example/t1' }], resources: { project: 'p1' }, user_id: 'u9', idempotency_key: null, created_at: 0,
};
const company: Company = { id: 'co1', name: 'Acme', sub_domain: 'acme', created_at: 0 };
const facts = (s: Subscription, e: StoredEvent = event): NotificationFacts => ({
  deliveryId: `dlv_${s.id}`, event: e, subscription: s, company, accessToken: 'tok', tokenExpiresAt: 1_800_000_000_000, now: 1_790_000_000_123,
});

test('bodies are the payload serialised whole, byte for byte, with the event object serialised once and shared', () => {
  for (const [i, e] of [event, { ...event, id: 'evt_2', channel: 'links.create', user_id: null }].entries()) {
    for (const id of ['s1', 's2']) {
      const f = facts(sub(`${id}-${i}`, 'json'), e);
      assert.equal(buildRequest(app('signed_request'), f).body, JSON.stringify(notificationPayload(f)));
      const { algorithm: _a, ...data } = notificationPayload(f);
      assert.equal(buildRequest(app('standard_webhooks'), f).body, JSON.stringify({ type: e.channel, timestamp: isoSeconds(f.now), data }));
      const form = buildRequest(app('signed_request'), facts(sub(`${id}-${i}`, 'form'), e)).body;
      const value = form.slice('signed_request='.length);
      assert.equal(value, encodeURIComponent(value), 'the form value needs no encoding (hex, a dot, base64url)');
      assert.equal(new URLSearchParams(form).get('signed_request'), value);
      const [signature, encoded] = value.split('.') as [string, string];
      assert.equal(signature, createHmac('sha256', 'cs').update(encoded).digest('hex'), 'keyed with the client secret, over the base64url text');
      assert.equal(Buffer.from(encoded, 'base64url').toString('utf8'), JSON.stringify(notificationPayload(facts(sub(`${id}-${i}`, 'form'), e))));
    }
  }
});

test('isoSeconds gives each time its own second, whatever the order of the times asked', () => {
  const plain = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  const times = [1_790_000_000_123, 1_790_000_003_999, 1_790_000_000_999, 1_800_000_000_000, 1_790_000_003_000, 1_790_000_000_000, 0, 1_800_000_000_500];
  for (const t of [...times, ...times.reverse()]) assert.equal(isoSeconds(t), plain(t), `for ${t}`);
  assert.equal(isoSeconds(1_790_000_000_123), '2026-09-21T14:13:20Z');
});

test('the notification carries the contract fields, in order, with their values', () => {
  const f = facts(sub('s1', 'json'));
  const body = JSON.parse(buildRequest(app('signed_request'), f).body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['obj', 'channel', 'event_id', 'sub_id', 'company_id', 'user_id', 'sub_domain', 'actor_id', 'issued_at', 'access_token', 'expires', 'algorithm']);
  assert.deepEqual(body, {
    obj: { task: event.object, links: event.links },
    channel: 'task.update', event_id: 'evt_1', sub_id: 's1', company_id: 'co1', user_id: 'u1', sub_domain: 'acme', actor_id: 'u9',
    issued_at: '2026-09-21T14:13:20Z', access_token: 'tok', expires: '2027-01-15T08:00:00Z', algorithm: 'HMAC-SHA256',
  });
  const anonymous = JSON.parse(buildRequest(app('signed_request'), facts(sub('s2', 'json'), { ...event, id: 'evt_3', user_id: null })).body) as Record<string, unknown>;
  assert.equal('actor_id' in anonymous, false, 'no actor_id when the event has no user');
});
