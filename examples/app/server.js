// examples/app — the sample application behind tapwork in the Compose stack.
// It stands for the real TAPWORK application: a page, /healthz, a small JSON
// API that reads and writes PostgreSQL, and an upload directory (a volume the
// backup job saves). Node's standard library plus the `pg` package only.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { Pool } = require('pg');

const PORT = Number(process.env.PORT || 3000);
const UPLOAD_DIR = process.env.UPLOAD_DIR || '/data/uploads';
const MAX_BODY = 1 << 20; // 1 MiB per request
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

// PGHOST, PGUSER, PGPASSWORD, PGDATABASE come from the environment.
const pool = new Pool({ max: 5, connectionTimeoutMillis: 3000, idleTimeoutMillis: 10000 });
pool.on('error', (err) => console.error(`pg pool: ${err.message}`));

let schemaReady = false;
async function ensureSchema() {
  await pool.query(`CREATE TABLE IF NOT EXISTS notes (
    id serial PRIMARY KEY,
    body text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at timestamptz NOT NULL DEFAULT now())`);
  schemaReady = true;
}

// The database may start after us: retry (bounded) instead of depending on
// container health checks, which do not run everywhere.
async function waitForDatabase(tries = 60) {
  for (let i = 1; i <= tries; i++) {
    try {
      await ensureSchema();
      console.log('database ready');
      return;
    } catch (err) {
      if (i === tries) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
const json = (res, status, obj) => send(res, status, 'application/json', JSON.stringify(obj) + '\n');
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function listNotes() {
  const r = await pool.query('SELECT id, body, created_at FROM notes ORDER BY id DESC LIMIT 50');
  return r.rows;
}

async function page(req, res) {
  let notes = [];
  let dbState = 'ok';
  try {
    notes = await listNotes();
  } catch (err) {
    dbState = `unavailable (${err.message})`;
  }
  const items = notes.map((n) => `<li>${escapeHtml(n.body)}</li>`).join('\n');
  send(res, 200, 'text/html; charset=utf-8', `<!doctype html>
<html><head><meta charset="utf-8"><title>tapwork example app</title>
<link rel="stylesheet" href="/assets/app.css"><script src="/assets/app.js" defer></script></head>
<body>
<h1>tapwork example app</h1>
<p>Served by the app behind tapwork. Host: ${escapeHtml(req.headers.host || '')};
forwarded for: ${escapeHtml(req.headers['x-forwarded-for'] || '-')};
request id: ${escapeHtml(req.headers['x-request-id'] || '-')}.</p>
<p>Database: ${escapeHtml(dbState)}. Notes (POST JSON {"body": "..."} to /api/notes):</p>
<ul class="notes">
${items}
</ul>
</body></html>
`);
}

async function route(req, res) {
  const url = new URL(req.url, 'http://app.invalid');
  const p = url.pathname;
  if (p === '/healthz' && req.method === 'GET') {
    return json(res, 200, { status: 'ok', database: schemaReady ? 'ready' : 'waiting' });
  }
  if (p === '/' && req.method === 'GET') return page(req, res);
  if (p === '/api/notes' && req.method === 'GET') return json(res, 200, await listNotes());
  if (p === '/api/notes' && req.method === 'POST') {
    let body;
    try {
      body = JSON.parse((await readBody(req)).toString('utf8'));
    } catch (err) {
      return json(res, err.status || 400, { error: err.status ? err.message : 'invalid JSON' });
    }
    if (typeof body.body !== 'string' || body.body.length === 0 || body.body.length > 10000) {
      return json(res, 400, { error: 'body must be a string of 1..10000 characters' });
    }
    const r = await pool.query('INSERT INTO notes (body) VALUES ($1) RETURNING id, body, created_at', [body.body]);
    return json(res, 201, r.rows[0]);
  }
  if (p === '/api/uploads' && req.method === 'GET') {
    const names = fs.existsSync(UPLOAD_DIR) ? fs.readdirSync(UPLOAD_DIR).filter((n) => NAME_RE.test(n)) : [];
    return json(res, 200, names.sort());
  }
  const m = /^\/api\/uploads\/([^/]+)$/.exec(p);
  if (m && (req.method === 'PUT' || req.method === 'GET')) {
    const name = decodeURIComponent(m[1]);
    if (!NAME_RE.test(name)) return json(res, 400, { error: 'bad file name' });
    const file = path.join(UPLOAD_DIR, name);
    if (req.method === 'GET') {
      if (!fs.existsSync(file)) return json(res, 404, { error: 'not found' });
      return send(res, 200, 'application/octet-stream', fs.readFileSync(file));
    }
    let data;
    try {
      data = await readBody(req);
    } catch (err) {
      return json(res, err.status || 400, { error: err.message });
    }
    fs.mkdirSync(UPLOAD_DIR, { recursive: true });
    fs.writeFileSync(file, data);
    return json(res, 201, { name, bytes: data.length });
  }
  return json(res, 404, { error: 'not found' });
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => {
    console.error(`${req.method} ${req.url}: ${err.message}`);
    if (!res.headersSent) json(res, 503, { error: 'database unavailable' });
    else res.destroy();
  });
});
server.keepAliveTimeout = 65000; // longer than tapwork's upstream idle_timeout

server.listen(PORT, () => console.log(`example app listening on :${PORT}`));
waitForDatabase().catch((err) => console.error(`database not ready: ${err.message}`));

function shutdown(sig) {
  console.log(`${sig}: closing`);
  server.close(() => pool.end().finally(() => process.exit(0)));
  setTimeout(() => process.exit(0), 8000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
