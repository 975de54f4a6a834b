/** The OAuth pages: plain server-rendered HTML, every value escaped, no script at all. */
export const esc = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;margin:0;color:#1d2330}
main{max-width:26rem;margin:4rem auto;background:#fff;border-radius:10px;padding:2rem;box-shadow:0 2px 10px #0002}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input[type=email],input[type=password]{width:100%;padding:.55rem;border:1px solid #bbc;border-radius:6px;box-sizing:border-box}
button{padding:.6rem 1.2rem;border-radius:6px;border:1px solid #2f5fd0;background:#2f5fd0;color:#fff;font-size:1rem;margin:1rem .5rem 0 0;cursor:pointer}
button.secondary{background:#fff;color:#2f5fd0}.error{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:6px}
ul{padding-left:1.2rem}.muted{color:#667}table{width:100%;border-collapse:collapse}td{padding:.4rem 0;border-bottom:1px solid #eee}`;

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · Herald</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`;
}

export const hidden = (fields: Record<string, string>): string =>
  Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`).join('');

export function signInPage(o: { action: string; csrf: string; params: Record<string, string>; error?: string; appName?: string }): string {
  return page('Sign in', `<h1>Sign in${o.appName ? ` to authorize ${esc(o.appName)}` : ''}</h1>
${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ''}
<form method="post" action="${esc(o.action)}">${hidden({ ...o.params, csrf: o.csrf })}
<label for="email">Email</label><input id="email" type="email" name="email" autocomplete="username" required>
<label for="password">Password</label><input id="password" type="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>`);
}

export function chooseCompanyPage(o: { csrf: string; params: Record<string, string>; choices: { user_id: string; company: string }[] }): string {
  const buttons = o.choices.map((c) => `<button type="submit" name="user_id" value="${esc(c.user_id)}">${esc(c.company)}</button>`).join('');
  return page('Choose a company', `<h1>Which company?</h1><p>You belong to several companies. The app is authorized for one of them.</p>
<form method="post" action="/oauth/company">${hidden({ ...o.params, csrf: o.csrf })}${buttons}</form>`);
}

export function consentPage(o: { csrf: string; params: Record<string, string>; appName: string; appUrl: string; company: string; email: string; scopes: string[] }): string {
  return page('Authorize', `<h1>${esc(o.appName)} wants access</h1>
<p><strong>${esc(o.appName)}</strong> (<span class="muted">${esc(o.appUrl)}</span>) asks to act for
<strong>${esc(o.email)}</strong> in <strong>${esc(o.company)}</strong>. It will be able to:</p>
<ul>${o.scopes.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<p class="muted">Only while your role allows it. You can revoke it at any time on <a href="/account">your account page</a>.</p>
<form method="post" action="/oauth/authorize">${hidden({ ...o.params, csrf: o.csrf })}
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" class="secondary" name="decision" value="deny">Deny</button></form>`);
}

export function errorPage(title: string, detail: string): string {
  return page(title, `<h1>${esc(title)}</h1><p class="error" role="alert">${esc(detail)}</p>`);
}

export function accountPage(o: { csrf: string; email: string; grants: { id: string; app: string; url: string; company: string; scope: string; since: string }[] }): string {
  const rows = o.grants.map((g) => `<tr><td><strong>${esc(g.app)}</strong><br><span class="muted">${esc(g.url)} · ${esc(g.company)} · ${esc(g.scope || 'everything your role allows')} · since ${esc(g.since)}</span></td>
<td><form method="post" action="/account/grants/${esc(g.id)}/revoke">${hidden({ csrf: o.csrf })}<button type="submit" class="secondary">Revoke</button></form></td></tr>`).join('');
  return page('Authorized apps', `<h1>Apps you authorized</h1><p class="muted">Signed in as ${esc(o.email)}</p>
${o.grants.length ? `<table>${rows}</table>` : '<p>No app is authorized.</p>'}
<form method="post" action="/oauth/logout">${hidden({ csrf: o.csrf })}<button type="submit" class="secondary">Sign out</button></form>`);
}
