import { HeraldError } from './errors.js';

/** A resource type the host declares: its events are the channels `type.action`. */
export interface ResourceType {
  /** Singular, the channel prefix: `client`. */
  type: string;
  /** Plural, the scope context and role permission key: `clients`. */
  plural: string;
  /** Default `["create", "update", "delete"]`. */
  actions: string[];
  /** Types an instance of this one belongs to (`["project"]`), for resource subscriptions. */
  parents: string[];
}

export const DEFAULT_ACTIONS: readonly string[] = ['create', 'update', 'delete'];

const NAME = /^[a-z][a-z0-9_]{0,62}$/;

export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value);
}

export interface Channel {
  type: string;
  action: string;
}

/** `client.create` -> {type: 'client', action: 'create'}, or null if it is not of that shape. */
export function parseChannel(channel: string): Channel | null {
  const dot = channel.indexOf('.');
  if (dot <= 0 || dot !== channel.lastIndexOf('.')) return null;
  const type = channel.slice(0, dot);
  const action = channel.slice(dot + 1);
  return isName(type) && isName(action) ? { type, action } : null;
}

/** Checks a declaration; returns it with defaults applied or throws VALIDATION_FAILED. */
export function normaliseResourceType(
  type: string,
  body: { plural: string; actions?: string[] | undefined; parents?: string[] | undefined },
): ResourceType {
  const bad = (detail: string): never => {
    throw new HeraldError('VALIDATION_FAILED', detail);
  };
  if (!isName(type)) bad(`resource type "${type}" must match ${NAME.source}`);
  if (!isName(body.plural)) bad(`plural "${body.plural}" must match ${NAME.source}`);
  const actions = body.actions ?? [...DEFAULT_ACTIONS];
  if (actions.length === 0) bad('actions must not be empty');
  for (const a of actions) if (!isName(a)) bad(`action "${a}" must match ${NAME.source}`);
  const parents = body.parents ?? [];
  for (const p of parents) if (!isName(p)) bad(`parent "${p}" must match ${NAME.source}`);
  if (parents.includes(type)) bad(`resource type "${type}" cannot be its own parent`);
  return { type, plural: body.plural, actions: [...new Set(actions)], parents: [...new Set(parents)] };
}

/** Every channel of a catalog, in declaration order. */
export function channelsOf(types: readonly ResourceType[]): string[] {
  return types.flatMap((t) => t.actions.map((a) => `${t.type}.${a}`));
}

/** Looks a channel up in the catalog: the resource type and action, or null if undeclared. */
export function resolveChannel(
  types: readonly ResourceType[],
  channel: string,
): { resource: ResourceType; action: string } | null {
  const parsed = parseChannel(channel);
  if (!parsed) return null;
  const resource = types.find((t) => t.type === parsed.type);
  if (!resource || !resource.actions.includes(parsed.action)) return null;
  return { resource, action: parsed.action };
}
