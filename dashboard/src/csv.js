// CSV export (RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line break), built in the
// browser from what the page holds and handed over as a download: nothing personal travels in a URL.

function field(value) {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  // A leading =, +, - or @ would make a spreadsheet run the cell as a formula: prefix a quote (OWASP's advice).
  // Numbers and E.164 phones (+15550001001) are left as they are.
  const safe = /^[=+\-@\t\r]/.test(text) && !/^[+-]?[\d.]+$/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

// columns: [{name, value(row)}]
export function toCsv(columns, rows) {
  const lines = [columns.map((c) => field(c.name)).join(',')];
  for (const row of rows) lines.push(columns.map((c) => field(c.value(row))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function timestampForFile(date = new Date()) {
  return date.toISOString().slice(0, 19).replaceAll(':', '').replace('T', '-');
}
