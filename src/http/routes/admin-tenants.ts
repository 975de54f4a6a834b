import type { FastifyPluginAsync } from 'fastify';
import { HeraldError } from '../../domain/errors.js';
import type { Permissions } from '../../domain/permissions.js';
import { createCompany, createUser, putRole, requireCompany, updateUser } from '../../service/admin.js';
import { isoTime, type Core } from '../../service/context.js';
import type { User } from '../../store/types.js';
import { shortString } from '../schemas.js';

const userView = (u: User) => ({
  id: u.id,
  company_id: u.company_id,
  email: u.email,
  name: u.name,
  role: u.role,
  created_at: isoTime(u.created_at),
  updated_at: isoTime(u.updated_at),
});

export const adminTenantRoutes = (core: Core): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { name: string; sub_domain: string } }>(
    '/companies',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name', 'sub_domain'],
          additionalProperties: false,
          properties: { name: shortString, sub_domain: { type: 'string', maxLength: 63 } },
        },
      },
    },
    async (request, reply) => {
      const c = await createCompany(core, request.body);
      return reply.code(201).send({ id: c.id, name: c.name, sub_domain: c.sub_domain, created_at: isoTime(c.created_at) });
    },
  );

  app.get<{ Params: { cid: string } }>('/companies/:cid', async (request) => {
    const c = await requireCompany(core, request.params.cid);
    return { id: c.id, name: c.name, sub_domain: c.sub_domain, created_at: isoTime(c.created_at) };
  });

  app.put<{ Params: { cid: string; role: string }; Body: { permissions: Permissions } }>(
    '/companies/:cid/roles/:role',
    {
      schema: {
        body: {
          type: 'object',
          required: ['permissions'],
          additionalProperties: false,
          properties: {
            permissions: {
              type: 'object',
              maxProperties: 200,
              additionalProperties: { type: 'array', maxItems: 50, items: { type: 'string', maxLength: 63 } },
            },
          },
        },
      },
    },
    async (request) => {
      await putRole(core, request.params.cid, request.params.role, request.body.permissions);
      return { company_id: request.params.cid, name: request.params.role, permissions: request.body.permissions };
    },
  );

  app.post<{ Params: { cid: string }; Body: { email: string; name?: string; role: string; password?: string } }>(
    '/companies/:cid/users',
    {
      schema: {
        body: {
          type: 'object',
          required: ['email', 'role'],
          additionalProperties: false,
          properties: { email: { type: 'string', maxLength: 320 }, name: shortString, role: { type: 'string', maxLength: 63 }, password: { type: 'string', maxLength: 200 } },
        },
      },
    },
    async (request, reply) => reply.code(201).send(userView(await createUser(core, request.params.cid, request.body))),
  );

  app.get<{ Params: { cid: string; uid: string } }>('/companies/:cid/users/:uid', async (request) => {
    const user = await core.store.getUser(request.params.cid, request.params.uid);
    if (!user) throw new HeraldError('USER_NOT_FOUND', `user "${request.params.uid}" does not exist in company "${request.params.cid}"`);
    return userView(user);
  });

  app.patch<{ Params: { cid: string; uid: string }; Body: { role?: string; password?: string } }>(
    '/companies/:cid/users/:uid',
    {
      schema: {
        body: {
          type: 'object',
          minProperties: 1,
          additionalProperties: false,
          properties: { role: { type: 'string', maxLength: 63 }, password: { type: 'string', maxLength: 200 } },
        },
      },
    },
    async (request) => userView(await updateUser(core, request.params.cid, request.params.uid, request.body)),
  );
};
