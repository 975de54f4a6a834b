import assert from 'node:assert/strict';

/**
 * A minimal cookie-keeping HTTP "browser" for the OAuth pages when no real browser is
 * needed: follows nothing by itself (redirects are returned), submits forms by their
 * hidden fields. The Chromium test drives the same pages in a real browser.
 */
export class PageDriver {
  private cookies = new Map<string, string>();
  constructor(readonly origin: string) {}

  async get(path: string): Promise<{ status: number; html: string; location: string | null }> {
    return this.send('GET', path);
  }

  async post(path: string, fields: Record<string, string>): Promise<{ status: number; html: string; location: string | null }> {
    return this.send('POST', path, new URLSearchParams(fields).toString());
  }

  private async send(method: string, path: string, body?: string) {
    const res = await fetch(new URL(path, this.origin), {
      method,
      redirect: 'manual',
      headers: {
        cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      body,
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    return { status: res.status, html: await res.text(), location: res.headers.get('location') };
  }

  /** The hidden fields of the form posting to `action`. */
  static hiddenFields(html: string, action: string): Record<string, string> {
    const start = html.indexOf(`action="${action}"`);
    assert.ok(start >= 0, `no form posting to ${action} in: ${html.slice(0, 300)}`);
    const form = html.slice(start, html.indexOf('</form>', start));
    const fields: Record<string, string> = {};
    for (const m of form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
      fields[m[1]!] = m[2]!.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    }
    return fields;
  }
}
