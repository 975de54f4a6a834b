import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  channelsOf,
  normaliseResourceType,
  parseChannel,
  resolveChannel,
  type ResourceType,
} from '../../src/domain/catalog.js';
import { HeraldError } from '../../src/domain/errors.js';
import { roleAllows, type Permissions } from '../../src/domain/permissions.js';
import { mayReceive, type ReceiverContext } from '../../src/domain/policy.js';
import { parseScope } from '../../src/domain/scope.js';

const catalog: ResourceType[] = [
  normaliseResourceType('client', { plural: 'clients' }),
  normaliseResourceType('invoice', { plural: 'invoices', actions: ['create', 'delete', 'pay'] }),
  normaliseResourceType('task', { plural: 'tasks', parents: ['project'] }),
];
const admin: Permissions = { clients: ['create', 'read', 'update', 'delete'], invoices: ['read'] };

function who(scope: string, over: Partial<ReceiverContext> = {}): ReceiverContext {
  return { scope: parseScope(scope), permissions: admin, roleName: 'sales', revoked: false, ...over };
}

function validationFails(fn: () => unknown, detail: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HeraldError);
    assert.equal(err.code, 'VALIDATION_FAILED');
    assert.equal(err.status, 400);
    assert.match(err.message, detail);
    return true;
  });
}

describe('roleAllows', () => {
  test('exact plural and action', () => {
    assert.equal(roleAllows(admin, 'clients', 'delete'), true);
    assert.equal(roleAllows(admin, 'invoices', 'read'), true);
    assert.equal(roleAllows(admin, 'invoices', 'delete'), false);
    assert.equal(roleAllows(admin, 'tasks', 'read'), false);
    assert.equal(roleAllows({}, 'clients', 'read'), false);
  });

  test('inherited Object.prototype keys are not permissions', () => {
    assert.equal(roleAllows({}, 'constructor', 'name'), false);
    assert.equal(roleAllows({}, 'toString', 'call'), false);
    assert.equal(roleAllows({}, '__proto__', 'constructor'), false);
  });

  test('a non-array entry allows nothing', () => {
    const odd = { clients: 'create' } as unknown as Permissions;
    assert.equal(roleAllows(odd, 'clients', 'create'), false);
  });
});

describe('mayReceive', () => {
  test('allowed when scope and role both cover the channel', () => {
    assert.deepEqual(mayReceive(catalog, 'client.create', who('clients')), { ok: true });
    assert.deepEqual(mayReceive(catalog, 'client.create', who('')), { ok: true });
  });

  test('role with invoices:["read"] cannot receive invoice.delete', () => {
    assert.deepEqual(mayReceive(catalog, 'invoice.delete', who('invoices')), {
      ok: false,
      code: 'ROLE_FORBIDS',
      reason: 'role "sales" may not "delete" invoices (needed for "invoice.delete")',
    });
  });

  test('scope "clients:create" allows client.create but not client.delete', () => {
    assert.deepEqual(mayReceive(catalog, 'client.create', who('clients:create')), { ok: true });
    assert.deepEqual(mayReceive(catalog, 'client.delete', who('clients:create')), {
      ok: false,
      code: 'SCOPE_MISSING',
      reason: 'scope does not grant "clients:delete" (needed for "client.delete")',
    });
  });

  test('API scopes alone do not grant notifications', () => {
    assert.equal(mayReceive(catalog, 'client.create', who('api/subs api/clients')).ok, false);
  });

  test('a revoked grant is refused before anything else', () => {
    assert.deepEqual(mayReceive(catalog, 'client.create', who('', { revoked: true })), {
      ok: false,
      code: 'UNAUTHENTICATED',
      reason: 'grant revoked',
    });
    assert.deepEqual(mayReceive(catalog, 'nope.nope', who('', { revoked: true })).ok, false);
  });

  test('unknown channels and undeclared actions', () => {
    assert.deepEqual(mayReceive(catalog, 'galaxy.create', who('')), {
      ok: false,
      code: 'CHANNEL_UNKNOWN',
      reason: 'channel "galaxy.create" does not exist',
    });
    assert.equal(mayReceive(catalog, 'invoice.update', who('')).ok, false);
  });

  test('a role that no longer exists refuses', () => {
    assert.deepEqual(mayReceive(catalog, 'client.create', who('', { permissions: null, roleName: 'gone' })), {
      ok: false,
      code: 'ROLE_FORBIDS',
      reason: 'role "gone" no longer exists',
    });
  });

  test('scope is checked before the role', () => {
    const d = mayReceive(catalog, 'task.create', who('clients', { permissions: null }));
    assert.equal(d.ok === false && d.code, 'SCOPE_MISSING');
  });
});

describe('catalog', () => {
  test('parseChannel accepts type.action only', () => {
    assert.deepEqual(parseChannel('client.create'), { type: 'client', action: 'create' });
    assert.deepEqual(parseChannel('line_item.bulk_update2'), { type: 'line_item', action: 'bulk_update2' });
    for (const bad of ['client', '.create', 'client.', 'a.b.c', 'Client.create', 'client.Create', '1a.create', 'client .create', '']) {
      assert.equal(parseChannel(bad), null, bad);
    }
  });

  test('normaliseResourceType applies defaults', () => {
    assert.deepEqual(normaliseResourceType('client', { plural: 'clients' }), {
      type: 'client',
      plural: 'clients',
      actions: ['create', 'update', 'delete'],
      parents: [],
    });
  });

  test('normaliseResourceType de-duplicates actions and parents, keeping order', () => {
    assert.deepEqual(
      normaliseResourceType('task', { plural: 'tasks', actions: ['update', 'create', 'update'], parents: ['project', 'team', 'project'] }),
      { type: 'task', plural: 'tasks', actions: ['update', 'create'], parents: ['project', 'team'] },
    );
  });

  test('normaliseResourceType refuses bad declarations with VALIDATION_FAILED', () => {
    validationFails(() => normaliseResourceType('Client', { plural: 'clients' }), /resource type "Client"/);
    validationFails(() => normaliseResourceType('client', { plural: 'client s' }), /plural "client s"/);
    validationFails(() => normaliseResourceType('client', { plural: 'clients', actions: [] }), /actions must not be empty/);
    validationFails(() => normaliseResourceType('client', { plural: 'clients', actions: ['create', 'de-lete'] }), /action "de-lete"/);
    validationFails(() => normaliseResourceType('task', { plural: 'tasks', parents: ['Project'] }), /parent "Project"/);
    validationFails(() => normaliseResourceType('task', { plural: 'tasks', parents: ['task'] }), /cannot be its own parent/);
  });

  test('normaliseResourceType does not alias the caller arrays or the defaults', () => {
    const t = normaliseResourceType('client', { plural: 'clients' });
    t.actions.push('archive');
    assert.deepEqual(normaliseResourceType('client', { plural: 'clients' }).actions, ['create', 'update', 'delete']);
  });

  test('channelsOf lists every channel in declaration order', () => {
    assert.deepEqual(channelsOf(catalog), [
      'client.create', 'client.update', 'client.delete',
      'invoice.create', 'invoice.delete', 'invoice.pay',
      'task.create', 'task.update', 'task.delete',
    ]);
    assert.deepEqual(channelsOf([]), []);
  });

  test('resolveChannel finds the resource type and action', () => {
    const r = resolveChannel(catalog, 'invoice.pay');
    assert.equal(r?.resource, catalog[1]);
    assert.equal(r?.action, 'pay');
    assert.equal(resolveChannel(catalog, 'invoice.update'), null);
    assert.equal(resolveChannel(catalog, 'project.create'), null);
    assert.equal(resolveChannel(catalog, 'clients.create'), null);
    assert.equal(resolveChannel(catalog, 'client'), null);
  });
});
