// The operators' dashboard: configuration from the Worker, sign-in with Supabase Auth (supabase-js keeps and
// refreshes the session), the caller's role from the Worker, then one page per hash route. Only `/` is ever
// loaded: pages are `#/...`, and nothing personal goes into the hash (search text and filters stay in memory).
import { createClient } from '@supabase/supabase-js';
import { fetchConfig, fetchRole } from './api.js';
import { errorBox, h, replace } from './dom.js';
import { renderSignIn } from './pages/signin.js';
import { renderCalls } from './pages/calls.js';
import { renderCall } from './pages/call.js';
import { renderBatches } from './pages/batches.js';
import { renderBatch } from './pages/batch.js';
import { renderPhones } from './pages/phones.js';
import { renderAnalytics } from './pages/analytics.js';
import { renderSuppressions } from './pages/suppressions.js';
import { breakerBadge } from './providers.js';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const ROUTES = [
  { pattern: new RegExp('^#/calls$'), page: 'calls', render: renderCalls },
  { pattern: new RegExp(`^#/calls/(${UUID})$`), page: 'calls', render: renderCall },
  { pattern: new RegExp('^#/batches$'), page: 'batches', render: renderBatches },
  { pattern: new RegExp(`^#/batches/(${UUID})$`), page: 'batches', render: renderBatch },
  { pattern: new RegExp('^#/phones$'), page: 'phones', render: renderPhones },
  { pattern: new RegExp('^#/analytics$'), page: 'analytics', render: renderAnalytics },
  { pattern: new RegExp('^#/do-not-call$'), page: 'do-not-call', render: renderSuppressions },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

let ctx = null; // {supabase, role, email, isOperator, token()} once a viewer or operator is signed in
let cleanup = null; // the current page's teardown (its Realtime channels)
let generation = 0; // which route() is current: a page that finishes loading after the next one began is dropped
let breaker = null; // the header's circuit-breaker badge while a viewer or operator is signed in

function leavePage() {
  generation += 1;
  cleanup?.();
  cleanup = null;
}

async function route() {
  leavePage();
  if (!ctx) return;
  const mine = generation;
  const hash = location.hash.toLowerCase();
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(hash) })).find(({ m }) => m);
  if (!match) {
    location.replace('#/calls');
    return;
  }
  for (const link of nav.querySelectorAll('a')) link.classList.toggle('current', link.dataset.page === match.r.page);
  main.dataset.page = match.r.page;
  // Each page draws into a container of its own: one left behind by a newer route stays detached.
  const container = h('div', { class: 'page' });
  replace(main, container);
  let teardown = null;
  try {
    teardown = (await match.r.render(ctx, container, match.m[1])) ?? null;
  } catch (error) {
    container.append(errorBox(error));
  }
  if (mine === generation) cleanup = teardown;
  else teardown?.();
}

function showHeader(email, role) {
  nav.hidden = !role;
  replace(who, h('span', { class: 'muted' }, email), role ? h('span', { class: 'badge role' }, role) : null,
    h('button', { type: 'button', class: 'link', id: 'sign-out', onclick: () => supabase.auth.signOut() }, 'Sign out'));
}

let supabase = null;

// Signed in: ask the Worker for the role; a user off the operators' list sees why and nothing else.
async function enter(session) {
  const token = async () => (await supabase.auth.getSession()).data.session?.access_token ?? '';
  let role;
  let email = session.user?.email ?? '';
  try {
    ({ role, email } = await fetchRole(session.access_token));
    email ||= session.user?.email ?? '';
  } catch (error) {
    if (error.status === 401) {
      // A session the project no longer accepts (signed by a rotated key, say): start again from the sign-in.
      await supabase.auth.signOut({ scope: 'local' });
      return;
    }
    showHeader(session.user?.email ?? '', null);
    replace(main, errorBox(error));
    return;
  }
  showHeader(email, role);
  if (role !== 'viewer' && role !== 'operator') {
    ctx = null;
    main.dataset.page = 'denied';
    replace(main, h('section', { class: 'denied' },
      h('h1', {}, 'No access'),
      h('p', {}, `You are signed in as ${email}, but this account is not on outcall's list of operators, so the `
        + 'dashboard shows you nothing.'),
      h('p', {}, 'Ask an administrator to add you (add_operator in the database; ./dev operator add locally).')));
    return;
  }
  ctx = { supabase, role, email, isOperator: role === 'operator', token };
  breaker?.stop();
  breaker = breakerBadge(supabase);
  nav.append(breaker.element);
  document.body.classList.toggle('operator', ctx.isOperator);
  // (replaceState: no hashchange, so the page is drawn once.)
  if (!ROUTES.some((r) => r.pattern.test(location.hash.toLowerCase()))) history.replaceState(null, '', '#/calls');
  await route();
}

function showSignIn() {
  leavePage();
  breaker?.stop();
  breaker?.element.remove();
  breaker = null;
  ctx = null;
  nav.hidden = true;
  replace(who);
  main.dataset.page = 'signin';
  replace(main);
  renderSignIn(supabase, main, (session) => enter(session));
}

async function boot() {
  let config;
  try {
    config = await fetchConfig();
  } catch (error) {
    replace(main, errorBox(error));
    return;
  }
  // supabase-js's own session handling: kept in localStorage, refreshed before it expires.
  supabase = createClient(config.supabaseUrl, config.supabaseAnonKey);
  supabase.auth.onAuthStateChange((event) => {
    // (Deferred: supabase-js must not be called back from inside its own callback.)
    if (event === 'SIGNED_OUT') setTimeout(showSignIn, 0);
  });
  const { data } = await supabase.auth.getSession();
  if (data.session) await enter(data.session);
  else showSignIn();
  window.addEventListener('hashchange', () => route());
}

boot();
