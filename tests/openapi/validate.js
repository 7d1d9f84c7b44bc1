// validate.js - checks one live HTTP answer against docs/openapi.yaml with
// ajv: the operation's response for the status (or a named response of
// components/responses, for paths no operation has), its required headers,
// its media type and its JSON body schema. Used by tests/test_openapi.sh
// for what the validating proxy (prism) cannot forward: unmatched paths and
// methods, requests it refuses itself (no Content-Type, gzip bodies, 415,
// 401), bodies it cannot carry.
//
//   node validate.js SPEC METHOD PATH_TEMPLATE STATUS HEADERS_FILE BODY_FILE
//   node validate.js SPEC - '#/components/responses/NAME' STATUS HEADERS_FILE BODY_FILE
//
// HEADERS_FILE is curl -D output. Exit 0 and nothing printed when the
// answer conforms; exit 1 with the reasons otherwise.
'use strict';
const fs = require('fs');
const yaml = require('js-yaml');
const Ajv = require('ajv');

const [spec_file, method, where, status, hfile, bfile] = process.argv.slice(2);
const spec = yaml.safeLoad(fs.readFileSync(spec_file, 'utf8'));

function deref(node, seen = 0) {
  if (seen > 50) throw new Error('$ref loop');
  if (Array.isArray(node)) return node.map(n => deref(n, seen + 1));
  if (node && typeof node === 'object') {
    if (typeof node.$ref === 'string') {
      const parts = node.$ref.replace(/^#\//, '').split('/')
        .map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'));
      let t = spec;
      for (const p of parts) {
        t = t[p];
        if (t === undefined) throw new Error('unresolved ' + node.$ref);
      }
      return deref(t, seen + 1);
    }
    const out = {};
    for (const [k, v] of Object.entries(node)) out[k] = deref(v, seen + 1);
    return out;
  }
  return node;
}

const problems = [];
let resp;
if (method === '-') {
  resp = deref({$ref: where});
} else {
  const item = spec.paths[where];
  if (!item) { console.log('no path ' + where + ' in the document'); process.exit(1); }
  const op = item[method.toLowerCase()];
  if (!op) { console.log('no ' + method + ' ' + where + ' in the document'); process.exit(1); }
  resp = op.responses[status] ? deref(op.responses[status]) : op.responses.default && deref(op.responses.default);
  if (!resp) { console.log(method + ' ' + where + ': status ' + status + ' is not documented'); process.exit(1); }
}

// Headers: the last response block of curl -D (after any 100 Continue).
const blocks = fs.readFileSync(hfile, 'latin1').split(/\r?\n\r?\n/).filter(b => /^HTTP\//.test(b));
const lines = (blocks[blocks.length - 1] || '').split(/\r?\n/);
const got_status = (lines[0] || '').split(' ')[1];
if (got_status !== String(status)) problems.push('status ' + got_status + ', expected ' + status);
const headers = {};
for (const l of lines.slice(1)) {
  const i = l.indexOf(':');
  if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
}
for (const [name, h] of Object.entries(resp.headers || {})) {
  const v = headers[name.toLowerCase()];
  if (h.required && v === undefined) problems.push('header ' + name + ' missing');
  if (v !== undefined && h.schema) {
    const hv = h.schema.type === 'integer' ? Number(v) : v;
    const ajv = new Ajv({strict: false});
    if (!ajv.validate(h.schema, hv)) problems.push('header ' + name + ': ' + ajv.errorsText());
  }
}

const body = fs.readFileSync(bfile);
if (resp.content) {
  const ct = (headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  const media = resp.content[ct];
  if (!media) {
    problems.push('Content-Type "' + ct + '" is not one of ' + Object.keys(resp.content).join(', '));
  } else if (media.schema) {
    let value = body.toString('utf8');
    if (ct === 'application/json') {
      try { value = JSON.parse(value); } catch (e) { problems.push('body is not JSON: ' + e.message); }
    }
    const ajv = new Ajv({strict: false, allErrors: true});
    if (!problems.length && !ajv.validate(media.schema, value))
      problems.push('body: ' + ajv.errorsText(ajv.errors, {dataVar: 'body'}));
  }
}
if (problems.length) {
  console.log(problems.join('\n'));
  process.exit(1);
}
