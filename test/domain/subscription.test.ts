import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normaliseResourceType, type ResourceType } from '../../src/domain/catalog.js';
import { HeraldError, type ErrorCode } from '../../src/domain/errors.js';
import {
  checkHeaders,
  checkSelection,
  matchesResource,
  MAX_CHANNELS_PER_SUB,
  MAX_HEADERS,
  type EventFacts,
} from '../../src/domain/subscription.js';

const catalog: ResourceType[] = [
  normaliseResourceType('project', { plural: 'projects' }),
  normaliseResourceType('task', { plural: 'tasks', parents: ['project', 'team'] }),
  normaliseResourceType('client', { plural: 'clients' }),
];

function refused(fn: () => unknown, code: ErrorCode, status: number, detail?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HeraldError, 'expected a HeraldError');
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    if (detail) assert.match(err.message, detail);
    return true;
  });
}

const taskEvent: EventFacts = {
  channel: 'task.update',
  object: { id: 't1', title: 'Write the spec' },
  resources: { project: 'proj1', team: 'red' },
};

describe('matchesResource', () => {
  test('no resource: every event', () => {
    assert.equal(matchesResource(null, taskEvent), true);
  });

  test('a parent named in the event resources', () => {
    assert.equal(matchesResource({ type: 'project', id: 'proj1' }, taskEvent), true);
    assert.equal(matchesResource({ type: 'team', id: 'red' }, taskEvent), true);
    assert.equal(matchesResource({ type: 'project', id: 'proj2' }, taskEvent), false);
    assert.equal(matchesResource({ type: 'team', id: 'proj1' }, taskEvent), false);
    assert.equal(matchesResource({ type: 'company', id: 'proj1' }, taskEvent), false);
  });

  test('the object itself, by the channel type', () => {
    assert.equal(matchesResource({ type: 'task', id: 't1' }, taskEvent), true);
    assert.equal(matchesResource({ type: 'task', id: 't2' }, taskEvent), false);
    assert.equal(matchesResource({ type: 'client', id: 't1' }, taskEvent), false);
  });

  test('numeric object ids compare as strings', () => {
    const e: EventFacts = { channel: 'client.create', object: { id: 42 }, resources: {} };
    assert.equal(matchesResource({ type: 'client', id: '42' }, e), true);
    assert.equal(matchesResource({ type: 'client', id: '042' }, e), false);
  });

  test('inherited properties of resources are not matches', () => {
    assert.equal(matchesResource({ type: 'constructor', id: 'function Object() { [native code] }' }, taskEvent), false);
  });
});

describe('checkSelection', () => {
  test('returns unique channels in the order given', () => {
    assert.deepEqual(checkSelection(catalog, ['task.update', 'task.create', 'task.update'], null), ['task.update', 'task.create']);
  });

  test('an unknown channel is CHANNEL_UNKNOWN (422)', () => {
    refused(() => checkSelection(catalog, ['task.create', 'galaxy.create'], null), 'CHANNEL_UNKNOWN', 422, /"galaxy\.create"/);
    refused(() => checkSelection(catalog, ['task.archive'], null), 'CHANNEL_UNKNOWN', 422);
    refused(() => checkSelection(catalog, ['tasks.create'], null), 'CHANNEL_UNKNOWN', 422);
    refused(() => checkSelection(catalog, ['task'], null), 'CHANNEL_UNKNOWN', 422);
  });

  test('a resource may be a declared parent or the channel type itself', () => {
    assert.deepEqual(checkSelection(catalog, ['task.create'], { type: 'project', id: 'proj1' }), ['task.create']);
    assert.deepEqual(checkSelection(catalog, ['task.create'], { type: 'team', id: 'red' }), ['task.create']);
    assert.deepEqual(checkSelection(catalog, ['task.delete'], { type: 'task', id: 't1' }), ['task.delete']);
  });

  test('a resource type that is not a parent is RESOURCE_TYPE_UNKNOWN (422)', () => {
    refused(() => checkSelection(catalog, ['client.create'], { type: 'project', id: 'p' }), 'RESOURCE_TYPE_UNKNOWN', 422,
      /"project" is not a parent of "client"/);
    refused(() => checkSelection(catalog, ['task.create'], { type: 'galaxy', id: 'g' }), 'RESOURCE_TYPE_UNKNOWN', 422);
    refused(() => checkSelection(catalog, ['task.create', 'client.update'], { type: 'project', id: 'p' }), 'RESOURCE_TYPE_UNKNOWN', 422,
      /"client\.update"/);
  });

  test('the parent relation is not reversed', () => {
    refused(() => checkSelection(catalog, ['project.create'], { type: 'task', id: 't1' }), 'RESOURCE_TYPE_UNKNOWN', 422);
  });

  test('at least one and at most MAX_CHANNELS_PER_SUB channels', () => {
    refused(() => checkSelection(catalog, [], null), 'VALIDATION_FAILED', 400, /at least one/);
    assert.equal(MAX_CHANNELS_PER_SUB, 100);
    const many = Array.from({ length: 101 }, () => 'task.create');
    refused(() => checkSelection(catalog, many, null), 'VALIDATION_FAILED', 400, /at most 100/);
    assert.deepEqual(checkSelection(catalog, many.slice(1), null), ['task.create']);
  });
});

describe('checkHeaders', () => {
  test('valid headers are returned as given', () => {
    const h = { 'X-Api-Key': 'k3y', Authorization: 'Bearer abc', 'x-empty': '', 'X-Tab': 'a\tb ~' };
    assert.deepEqual(checkHeaders(h), h);
    assert.deepEqual(checkHeaders({}), {});
  });

  test('the result is a copy', () => {
    const h = { 'X-A': '1' };
    const out = checkHeaders(h);
    assert.notEqual(out, h);
  });

  test('headers Herald sets or the transport owns are HEADER_FORBIDDEN, case-insensitively', () => {
    for (const name of ['content-type', 'Content-Type', 'HOST', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Keep-Alive',
      'Upgrade', 'TE', 'Trailer', 'Expect', 'Proxy-Authorization', 'Proxy-Connection', 'User-Agent',
      'webhook-id', 'Webhook-Signature', 'WEBHOOK-TIMESTAMP', 'webhook-anything', 'X-Herald-Channel', 'x-herald-event-id']) {
      refused(() => checkHeaders({ [name]: 'x' }), 'HEADER_FORBIDDEN', 422, new RegExp(`"${name}"`));
    }
  });

  test('names that merely resemble forbidden ones are fine', () => {
    const h = { 'X-Host': 'a', 'Content-Typed': 'b', 'X-Webhook-Id': 'c', Webhook: 'd', 'Herald-Foo': 'e' };
    assert.deepEqual(checkHeaders(h), h);
  });

  test('invalid names are VALIDATION_FAILED', () => {
    for (const name of ['', 'X Api', 'X:Api', 'X-Ä', 'a(b)', 'x'.repeat(101)]) {
      refused(() => checkHeaders({ [name]: 'v' }), 'VALIDATION_FAILED', 400);
    }
    assert.deepEqual(checkHeaders({ ['x'.repeat(100)]: 'v' }), { ['x'.repeat(100)]: 'v' });
  });

  test('values must be printable ASCII of at most 1000 characters', () => {
    for (const value of ['a\r\nX-Injected: 1', 'a\nb', 'caf\u00e9', '\u0000', 'x'.repeat(1001)]) {
      refused(() => checkHeaders({ 'X-A': value }), 'VALIDATION_FAILED', 400, /printable ASCII/);
    }
    refused(() => checkHeaders({ 'X-A': 5 } as unknown as Record<string, string>), 'VALIDATION_FAILED', 400);
    assert.deepEqual(checkHeaders({ 'X-A': 'x'.repeat(1000) }), { 'X-A': 'x'.repeat(1000) });
  });

  test('at most MAX_HEADERS headers', () => {
    assert.equal(MAX_HEADERS, 20);
    const make = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-H${i}`, String(i)]));
    assert.equal(Object.keys(checkHeaders(make(20))).length, 20);
    refused(() => checkHeaders(make(21)), 'VALIDATION_FAILED', 400, /at most 20/);
  });

  test('a header named "__proto__" is kept (or refused), never silently dropped', () => {
    const parsed = JSON.parse('{"__proto__":"x","X-A":"1"}') as Record<string, string>;
    let out: Record<string, string>;
    try {
      out = checkHeaders(parsed);
    } catch (err) {
      assert.ok(err instanceof HeraldError);
      return;
    }
    assert.deepEqual(Object.keys(out), ['__proto__', 'X-A']);
  });
});
