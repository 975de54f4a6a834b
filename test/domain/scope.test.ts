import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeraldError } from '../../src/domain/errors.js';
import { formatScope, parseScope, scopeAllowsApi, scopeAllowsNotification } from '../../src/domain/scope.js';

function throwsScopeInvalid(raw: string, detail?: RegExp): void {
  assert.throws(
    () => parseScope(raw),
    (err: unknown) => {
      assert.ok(err instanceof HeraldError, 'expected a HeraldError');
      assert.equal(err.code, 'SCOPE_INVALID');
      assert.equal(err.status, 422);
      if (detail) assert.match(err.message, detail);
      return true;
    },
  );
}

describe('parseScope', () => {
  test('empty and blank scopes mean "all"', () => {
    assert.deepEqual(parseScope(''), { all: true, entries: [] });
    assert.deepEqual(parseScope('   '), { all: true, entries: [] });
  });

  test('a bare context grants every action (actions: null)', () => {
    assert.deepEqual(parseScope('clients'), { all: false, entries: [{ context: 'clients', actions: null }] });
  });

  test('context:action,action lists the actions in order', () => {
    assert.deepEqual(parseScope('clients:create,update'), {
      all: false,
      entries: [{ context: 'clients', actions: ['create', 'update'] }],
    });
  });

  test('entries are space separated; repeated spaces are ignored', () => {
    assert.deepEqual(parseScope('  api/subs  clients:create invoices '), {
      all: false,
      entries: [
        { context: 'api/subs', actions: null },
        { context: 'clients', actions: ['create'] },
        { context: 'invoices', actions: null },
      ],
    });
  });

  test('api/ scopes may carry actions too', () => {
    assert.deepEqual(parseScope('api/clients:read').entries, [{ context: 'api/clients', actions: ['read'] }]);
  });

  test('names may contain digits and underscores after a leading letter', () => {
    assert.deepEqual(parseScope('line_items2:bulk_create').entries, [
      { context: 'line_items2', actions: ['bulk_create'] },
    ]);
  });

  test('invalid contexts throw SCOPE_INVALID naming the entry', () => {
    throwsScopeInvalid('Clients', /"Clients"/);
    throwsScopeInvalid('clients 1clients', /"1clients"/);
    throwsScopeInvalid('api/', /"api\/"/);
    throwsScopeInvalid('api/api/subs');
    throwsScopeInvalid('web/subs');
    throwsScopeInvalid('cli-ents');
    throwsScopeInvalid(':create');
    throwsScopeInvalid('_clients');
    throwsScopeInvalid('a'.repeat(64));
  });

  test('a context of 63 characters is the longest accepted', () => {
    assert.equal(parseScope('a'.repeat(63)).entries[0]?.context, 'a'.repeat(63));
  });

  test('invalid actions throw SCOPE_INVALID naming the action', () => {
    throwsScopeInvalid('clients:', /invalid action ""/);
    throwsScopeInvalid('clients:create,', /invalid action ""/);
    throwsScopeInvalid('clients:create,,update');
    throwsScopeInvalid('clients:Create', /"Create"/);
    throwsScopeInvalid('clients:create:update');
    throwsScopeInvalid('clients:*');
  });

  test('tabs and newlines are not separators', () => {
    throwsScopeInvalid('clients\tinvoices');
    throwsScopeInvalid('clients\ninvoices');
  });

  test('a scope longer than 2000 characters is refused, 2000 is accepted', () => {
    const entry = 'abcdefghi'; // 9 chars + 1 space = 10 per entry
    const exact = Array.from({ length: 200 }, () => entry).join(' ') + ' x'; // 1999 + 2 = 2001
    assert.equal(exact.length, 2001);
    throwsScopeInvalid(exact, /longer than 2000/);
    const ok = exact.slice(0, 2000);
    assert.equal(ok.length, 2000);
    assert.equal(parseScope(ok).entries.length, 200);
  });

  test('parse errors are HeraldErrors with the catalogue title', () => {
    try {
      parseScope('BAD');
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof HeraldError);
      assert.equal(err.title, 'Invalid scope');
      assert.equal(err.name, 'HeraldError');
    }
  });
});

describe('formatScope', () => {
  test('canonical text: single spaces, actions comma-joined, order kept', () => {
    assert.equal(formatScope(parseScope('  invoices   clients:create,update  api/subs ')), 'invoices clients:create,update api/subs');
  });

  test('the all-scope formats as the empty string and round-trips', () => {
    assert.equal(formatScope(parseScope('')), '');
    assert.deepEqual(parseScope(formatScope(parseScope(''))), { all: true, entries: [] });
  });

  test('format then parse is the identity on parsed scopes', () => {
    const s = parseScope('api/subs clients:create,delete tasks');
    assert.deepEqual(parseScope(formatScope(s)), s);
  });
});

describe('scopeAllowsNotification', () => {
  test('empty scope allows every notification', () => {
    assert.equal(scopeAllowsNotification(parseScope(''), 'invoices', 'delete'), true);
  });

  test('a bare context allows every action of that context only', () => {
    const s = parseScope('clients');
    assert.equal(scopeAllowsNotification(s, 'clients', 'create'), true);
    assert.equal(scopeAllowsNotification(s, 'clients', 'anything'), true);
    assert.equal(scopeAllowsNotification(s, 'invoices', 'create'), false);
  });

  test('listed actions only', () => {
    const s = parseScope('clients:create,update');
    assert.equal(scopeAllowsNotification(s, 'clients', 'create'), true);
    assert.equal(scopeAllowsNotification(s, 'clients', 'update'), true);
    assert.equal(scopeAllowsNotification(s, 'clients', 'delete'), false);
  });

  test('several entries for one context add up', () => {
    const s = parseScope('clients:create clients:delete');
    assert.equal(scopeAllowsNotification(s, 'clients', 'create'), true);
    assert.equal(scopeAllowsNotification(s, 'clients', 'delete'), true);
    assert.equal(scopeAllowsNotification(s, 'clients', 'update'), false);
  });

  test('API scopes do not grant notifications', () => {
    const s = parseScope('api/clients api/subs');
    assert.equal(scopeAllowsNotification(s, 'clients', 'create'), false);
    assert.equal(scopeAllowsNotification(s, 'subs', 'create'), false);
  });

  test('contexts match exactly, not by prefix', () => {
    assert.equal(scopeAllowsNotification(parseScope('client'), 'clients', 'create'), false);
    assert.equal(scopeAllowsNotification(parseScope('clients_archive'), 'clients', 'create'), false);
  });
});

describe('scopeAllowsApi', () => {
  test('empty scope allows every API', () => {
    assert.equal(scopeAllowsApi(parseScope(''), 'subs'), true);
  });

  test('requires the api/ entry', () => {
    const s = parseScope('api/subs clients');
    assert.equal(scopeAllowsApi(s, 'subs'), true);
    assert.equal(scopeAllowsApi(s, 'clients'), false);
    assert.equal(scopeAllowsApi(parseScope('subs'), 'subs'), false);
  });

  test('an API scope with actions still grants the API', () => {
    assert.equal(scopeAllowsApi(parseScope('api/subs:read'), 'subs'), true);
  });
});
