// Building the page without a framework: h() makes an element, svg() an SVG element. Text is always set as text
// (never parsed as HTML), so what the database holds cannot inject markup. No inline styles: the page's CSP
// (style-src 'self') refuses them; everything looks the way app.css says, by class.

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (['value', 'checked', 'disabled', 'selected'].includes(name)) element[name] = value; // properties
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return build(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, children);
}

export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

// Formatting ------------------------------------------------------------------------------------------------

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

export function formatDateTime(value) {
  if (!value) return '';
  const date = new Date(value);
  // Postgres's 'infinity' (a row parked with next_attempt_at = infinity) is no date: Intl would throw on it.
  if (Number.isNaN(date.getTime())) return String(value);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeOnly.format(date) : dateTime.format(date);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds === '') return '';
  const s = Math.round(Number(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

export function formatCost(value) {
  if (value === null || value === undefined || value === '') return '';
  return `$${Number(value).toFixed(Number(value) < 1 ? 4 : 2)}`;
}

export function formatPercent(value) {
  if (value === null || value === undefined || value === '') return '';
  return `${(Number(value) * 100).toFixed(1)} %`;
}

export function shortId(id) {
  return String(id ?? '').slice(0, 8);
}

// A message in the page for what went wrong (PostgREST's and the Worker's errors carry a message).
export function errorBox(error) {
  const text = error?.message ?? error?.error?.message ?? String(error);
  return h('p', { class: 'error', role: 'alert' }, text);
}

// The local calendar days fromDay..toDay (yyyy-mm-dd inputs) as [from, to) ISO instants for PostgREST. A range
// that reaches today has no end (to: null): a page left open past midnight keeps showing the calls that come in.
export function dayRange(fromDay, toDay) {
  const start = new Date(`${fromDay}T00:00:00`);
  const end = new Date(`${toDay}T00:00:00`);
  end.setDate(end.getDate() + 1);
  return { from: start.toISOString(), to: toDay >= localDay() ? null : end.toISOString() };
}

export function localDay(date = new Date()) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// A Postgres timestamp as PostgREST ('2026-12-03T07:00:00.123456+00:00') or Realtime ('2026-12-03T07:00:00.123456+00')
// write it, as an ISO instant ('2026-12-03T07:00:00.123Z'), so values from both compare and export alike.
export function toIso(value) {
  if (!value) return value ?? null;
  const text = String(value).replace(' ', 'T').replace(/(\.\d{3})\d+/, '$1').replace(/([+-]\d\d)$/, '$1:00');
  const time = Date.parse(text);
  return Number.isNaN(time) ? value : new Date(time).toISOString();
}
