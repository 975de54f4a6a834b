import assert from 'node:assert/strict';
import type { TestServer } from './server.js';

/** The seed story: a CRM with clients, invoices, projects and tasks; one company, one user, one app. */
export interface Story {
  companyId: string;
  userId: string;
  appId: string;
  clientSecret: string;
  signingSecret: string;
  grantId: string;
  token: string;
}

export async function ok(p: Promise<{ status: number; body: any; text: string }>, status: number) {
  const res = await p;
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  return res.body;
}

export async function declareCatalog(s: TestServer): Promise<void> {
  await ok(s.admin('PUT', '/admin/resources/client', { plural: 'clients' }), 200);
  await ok(s.admin('PUT', '/admin/resources/invoice', { plural: 'invoices' }), 200);
  await ok(s.admin('PUT', '/admin/resources/project', { plural: 'projects' }), 200);
  await ok(s.admin('PUT', '/admin/resources/task', { plural: 'tasks', parents: ['project'] }), 200);
}

export async function seedStory(
  s: TestServer,
  appUrl: string,
  opts: { scope?: string; subDomain?: string; signature?: 'signed_request' | 'standard_webhooks'; catalog?: boolean } = {},
): Promise<Story> {
  if (opts.catalog !== false) await declareCatalog(s);
  const company = await ok(s.admin('POST', '/admin/companies', { name: 'Acme', sub_domain: opts.subDomain ?? 'acme' }), 201);
  const all = ['create', 'read', 'update', 'delete'];
  await ok(s.admin('PUT', `/admin/companies/${company.id}/roles/admin`, { permissions: { clients: all, invoices: all, tasks: all, projects: all } }), 200);
  await ok(s.admin('PUT', `/admin/companies/${company.id}/roles/viewer`, { permissions: { clients: ['read'], invoices: ['read'] } }), 200);
  const user = await ok(s.admin('POST', `/admin/companies/${company.id}/users`, { email: `ann@${opts.subDomain ?? 'acme'}.test`, name: 'Ann', role: 'admin' }), 201);
  const app = await ok(s.admin('POST', '/admin/apps', { name: 'Sync', url: appUrl, ...(opts.signature ? { signature: opts.signature } : {}) }), 201);
  const grant = await ok(
    s.admin('POST', '/admin/grants', { app_id: app.id, user_id: user.id, scope: opts.scope ?? 'api/subs clients invoices tasks' }),
    201,
  );
  return {
    companyId: company.id,
    userId: user.id,
    appId: app.id,
    clientSecret: app.client_secret,
    signingSecret: app.signing_secret,
    grantId: grant.grant_id,
    token: grant.access_token,
  };
}

export async function subscribe(s: TestServer, token: string, sub: Record<string, unknown>): Promise<string> {
  const body = await ok(s.call('POST', '/api/subs', { token, body: { sub } }), 201);
  return body.sub.id;
}

export async function publishEvent(s: TestServer, event: Record<string, unknown>): Promise<string> {
  const body = await ok(s.admin('POST', '/admin/events', event), 202);
  return body.id;
}

/** Polls the admin API until the delivery list satisfies `until`. */
export async function waitForDeliveries(
  s: TestServer,
  query: string,
  until: (ds: any[]) => boolean,
  timeoutMs = 10_000,
): Promise<any[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await s.admin('GET', `/admin/deliveries?${query}`);
    if (until(res.body.deliveries)) return res.body.deliveries;
    if (Date.now() > deadline) throw new Error(`deliveries never matched: ${JSON.stringify(res.body.deliveries)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
