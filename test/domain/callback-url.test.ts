import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_URL_LENGTH, validateAppUrl, validateCallbackUrl } from '../../src/domain/callback-url.js';
import { HeraldError, type ErrorCode } from '../../src/domain/errors.js';
import { ipLiteral, isPrivateAddress } from '../../src/domain/network.js';

const APP = 'https://app.example.com/hooks';

function refused(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HeraldError, 'expected a HeraldError');
    assert.equal(err.code, code);
    assert.equal(err.status, 422);
    return true;
  });
}
const cb = (raw: string, app = APP, allowPrivate = false) => validateCallbackUrl(raw, app, allowPrivate);

describe('validateCallbackUrl: within the app url', () => {
  test('the app path itself and paths under it, segment-wise', () => {
    assert.equal(cb('https://app.example.com/hooks'), 'https://app.example.com/hooks');
    assert.equal(cb('https://app.example.com/hooks/'), 'https://app.example.com/hooks/');
    assert.equal(cb('https://app.example.com/hooks/clients/new'), 'https://app.example.com/hooks/clients/new');
  });

  test('"/hooks" does not contain "/hooksmith" nor a parent path', () => {
    refused(() => cb('https://app.example.com/hooksmith'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('https://app.example.com/hook'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('https://app.example.com/'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('https://app.example.com/Hooks/x'), 'CALLBACK_OUTSIDE_APP_URL');
  });

  test('dot segments are resolved before the check', () => {
    refused(() => cb('https://app.example.com/hooks/../admin'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('https://app.example.com/hooks/%2e%2e/admin'), 'CALLBACK_OUTSIDE_APP_URL');
    assert.equal(cb('https://app.example.com/hooks/./a/../b'), 'https://app.example.com/hooks/b');
  });

  test('an app url ending in a slash', () => {
    assert.equal(cb('https://app.example.com/hooks/x', 'https://app.example.com/hooks/'), 'https://app.example.com/hooks/x');
    assert.equal(cb('https://app.example.com/anything', 'https://app.example.com'), 'https://app.example.com/anything');
  });

  test('same scheme, host and port', () => {
    refused(() => cb('https://evil.example.com/hooks'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('https://app.example.com.evil.com/hooks'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('https://app.example.com:8443/hooks'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('https://app.example.com/hooks', 'https://app.example.com:8443/hooks'), 'CALLBACK_OUTSIDE_APP_URL');
    refused(() => cb('http://app.example.com/hooks', 'https://app.example.com/hooks', true), 'CALLBACK_OUTSIDE_APP_URL');
  });

  test('default port and host case are normalised', () => {
    assert.equal(cb('https://APP.Example.com:443/hooks/x'), 'https://app.example.com/hooks/x');
  });

  test('the query is preserved', () => {
    assert.equal(cb('https://app.example.com/hooks/c?token=abc&x=1'), 'https://app.example.com/hooks/c?token=abc&x=1');
  });
});

describe('validateCallbackUrl: malformed', () => {
  test('not absolute, not http(s), credentials, fragment, too long', () => {
    refused(() => cb('/hooks/x'), 'CALLBACK_URL_INVALID');
    refused(() => cb('not a url'), 'CALLBACK_URL_INVALID');
    refused(() => cb('ftp://app.example.com/hooks'), 'CALLBACK_URL_INVALID');
    refused(() => cb('javascript:alert(1)'), 'CALLBACK_URL_INVALID');
    refused(() => cb('https://user:pw@app.example.com/hooks'), 'CALLBACK_URL_INVALID');
    refused(() => cb('https://user@app.example.com/hooks'), 'CALLBACK_URL_INVALID');
    refused(() => cb('https://app.example.com/hooks#frag'), 'CALLBACK_URL_INVALID');
    const long = `https://app.example.com/hooks/${'a'.repeat(MAX_URL_LENGTH)}`;
    refused(() => cb(long), 'CALLBACK_URL_INVALID');
  });
});

describe('validateCallbackUrl: reachability', () => {
  test('https is required unless private callbacks are allowed', () => {
    refused(() => cb('http://app.example.com/hooks', 'http://app.example.com/hooks'), 'CALLBACK_NOT_HTTPS');
    assert.equal(cb('http://app.example.com/hooks/x', 'http://app.example.com/hooks', true), 'http://app.example.com/hooks/x');
  });

  test('private, loopback, link-local and mapped literals are refused', () => {
    for (const host of ['127.0.0.1', '10.1.2.3', '192.168.0.1', '172.16.5.5', '169.254.169.254', '100.64.0.1', '0.0.0.0',
      '[::1]', '[fe80::1]', '[fd00::1]', '[::ffff:127.0.0.1]', '[::ffff:10.0.0.1]', '2130706433', '0x7f.1', 'localhost', 'api.localhost']) {
      const app = `https://${host}/hooks`;
      refused(() => cb(`${app}/x`, app), 'CALLBACK_PRIVATE_ADDRESS');
      refused(() => validateAppUrl(app, false), 'CALLBACK_PRIVATE_ADDRESS');
    }
  });

  test('allowPrivate accepts loopback over http', () => {
    assert.equal(cb('http://127.0.0.1:3000/hooks/x', 'http://127.0.0.1:3000/hooks', true), 'http://127.0.0.1:3000/hooks/x');
    assert.equal(cb('http://[::1]:3000/h', 'http://[::1]:3000/', true), 'http://[::1]:3000/h');
  });

  test('public literals are fine', () => {
    assert.equal(cb('https://8.8.8.8/hooks/x', 'https://8.8.8.8/hooks'), 'https://8.8.8.8/hooks/x');
  });

  test('NAT64 literal of a loopback address is refused', () => {
    refused(() => validateAppUrl('https://[64:ff9b::127.0.0.1]/', false), 'CALLBACK_PRIVATE_ADDRESS');
  });

  test('"localhost." (trailing dot) is refused like localhost', () => {
    refused(() => validateAppUrl('https://localhost./', false), 'CALLBACK_PRIVATE_ADDRESS');
  });
});

describe('validateAppUrl', () => {
  test('returns the canonical form', () => {
    assert.equal(validateAppUrl('https://App.Example.com', false), 'https://app.example.com/');
    assert.equal(validateAppUrl('https://app.example.com:443/hooks', false), 'https://app.example.com/hooks');
  });

  test('refusals and their codes', () => {
    refused(() => validateAppUrl('https://app.example.com/?a=1', false), 'URL_INVALID');
    refused(() => validateAppUrl('https://app.example.com/#x', false), 'URL_INVALID');
    refused(() => validateAppUrl('https://u:p@app.example.com/', false), 'URL_INVALID');
    refused(() => validateAppUrl('app.example.com', false), 'URL_INVALID');
    refused(() => validateAppUrl('ws://app.example.com', false), 'URL_INVALID');
    refused(() => validateAppUrl('http://app.example.com', false), 'CALLBACK_NOT_HTTPS');
    assert.equal(validateAppUrl('http://localhost:3000', true), 'http://localhost:3000/');
  });
});

describe('isPrivateAddress / ipLiteral', () => {
  test('private, reserved and special IPv4', () => {
    for (const a of ['0.1.2.3', '10.0.0.1', '100.127.255.255', '127.255.0.1', '169.254.169.254', '172.31.255.255',
      '192.0.0.8', '192.0.2.1', '192.168.1.1', '198.19.0.1', '198.51.100.7', '203.0.113.9', '224.0.0.1', '255.255.255.255']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
  });

  test('public IPv4 and the edges of private ranges', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '172.15.255.255', '172.32.0.0', '100.63.255.255', '100.128.0.0', '11.0.0.1', '169.253.255.255', '223.255.255.255']) {
      assert.equal(isPrivateAddress(a), false, a);
    }
  });

  test('IPv6 special ranges and IPv4-mapped forms', () => {
    for (const a of ['::', '::1', 'fc00::1', 'fdff::1', 'fe80::1', 'febf::1', 'ff02::1', '2001:db8::1', 'FE80::1',
      '::ffff:127.0.0.1', '::ffff:7f00:1', '::FFFF:A00:1', '0:0:0:0:0:ffff:7f00:1', '64:ff9b::10.0.0.1']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
    for (const a of ['2606:4700::1111', '2a00:1450::1', '::ffff:8.8.8.8', '::ffff:808:808']) {
      assert.equal(isPrivateAddress(a), false, a);
    }
  });

  test('names and garbage are not addresses', () => {
    assert.equal(isPrivateAddress('localhost'), false);
    assert.equal(isPrivateAddress(''), false);
    assert.equal(isPrivateAddress('[::1]'), false);
  });

  test('ipLiteral strips brackets and returns null for names', () => {
    assert.equal(ipLiteral('[::1]'), '::1');
    assert.equal(ipLiteral('10.0.0.1'), '10.0.0.1');
    assert.equal(ipLiteral('example.com'), null);
    assert.equal(ipLiteral('[example.com]'), null);
    assert.equal(ipLiteral('::1'), '::1');
  });
});
