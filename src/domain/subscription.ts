import { resolveChannel, type ResourceType } from './catalog.js';
import { HeraldError } from './errors.js';

/** What a subscription selects: channels, and optionally one resource instance. */
export interface ResourceRef {
  type: string;
  id: string;
}

export interface EventFacts {
  channel: string;
  object: { id: string | number; [k: string]: unknown };
  resources: Record<string, string>;
}

export const MAX_CHANNELS_PER_SUB = 100;
export const MAX_HEADERS = 20;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/;
const FORBIDDEN_HEADERS = new Set([
  'host', 'content-type', 'content-length', 'transfer-encoding', 'connection', 'keep-alive',
  'upgrade', 'te', 'trailer', 'expect', 'proxy-authorization', 'proxy-connection', 'user-agent',
  'content-encoding',
]);

/** Does a subscription that names `resource` receive this event? Null resource: every event. */
export function matchesResource(resource: ResourceRef | null, event: EventFacts): boolean {
  if (!resource) return true;
  if (event.resources[resource.type] === resource.id) return true;
  const objectType = event.channel.slice(0, event.channel.indexOf('.'));
  return objectType === resource.type && String(event.object.id) === resource.id;
}

/**
 * Checks the selected channels against the catalog (each must exist) and, when a resource is
 * named, that it is the channel's own type or a declared parent of it. Returns the unique
 * channels in the order given.
 */
export function checkSelection(catalog: readonly ResourceType[], channels: string[], resource: ResourceRef | null): string[] {
  if (channels.length === 0) throw new HeraldError('VALIDATION_FAILED', 'select at least one channel');
  if (channels.length > MAX_CHANNELS_PER_SUB) throw new HeraldError('VALIDATION_FAILED', `at most ${MAX_CHANNELS_PER_SUB} channels per subscription`);
  for (const channel of channels) {
    const resolved = resolveChannel(catalog, channel);
    if (!resolved) throw new HeraldError('CHANNEL_UNKNOWN', `channel "${channel}" does not exist; GET /api/subs/channels lists them`);
    if (resource && resource.type !== resolved.resource.type && !resolved.resource.parents.includes(resource.type)) {
      throw new HeraldError(
        'RESOURCE_TYPE_UNKNOWN',
        `channel "${channel}" cannot be scoped to a ${resource.type}: "${resource.type}" is not a parent of "${resolved.resource.type}"`,
      );
    }
  }
  return [...new Set(channels)];
}

/** Per-subscription headers: names are tokens, values printable, none that would break the request or its signature. */
export function checkHeaders(headers: Record<string, string>): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) throw new HeraldError('VALIDATION_FAILED', `at most ${MAX_HEADERS} headers`);
  const out: [string, string][] = [];
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!HEADER_NAME.test(name)) throw new HeraldError('VALIDATION_FAILED', `header name "${name}" is not a valid token`);
    if (FORBIDDEN_HEADERS.has(lower) || lower.startsWith('webhook-') || lower.startsWith('x-herald-')) {
      throw new HeraldError('HEADER_FORBIDDEN', `header "${name}" is set by Herald and cannot be overridden`);
    }
    if (typeof value !== 'string' || value.length > 1000 || !/^[\t\x20-\x7e]*$/.test(value)) {
      throw new HeraldError('VALIDATION_FAILED', `header "${name}" must be printable ASCII of at most 1000 characters`);
    }
    out.push([name, value]);
  }
  // fromEntries defines own properties, so even a "__proto__" header is kept as a header.
  return Object.fromEntries(out);
}
