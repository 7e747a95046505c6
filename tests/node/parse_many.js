// Parses many DUIS documents with the DCC's @smartdcc/duis-parser in one node process.
// Usage: node parse_many.js PARSER_DIR FILE...   prints one JSON line per file:
//   {"file", "ok", "error", "kind": "request"|"response", "code", "requestId", "payload"}
// "payload" is the ResponseMessage's payload element name ("NoBody" when it has none), or the alert kind.
const path = require('path');
const fs = require('fs');
const parser = require(path.resolve(process.argv[2]));
for (const file of process.argv.slice(3)) {
  const out = { file, ok: false };
  try {
    const doc = parser.parseDuis('simplified', fs.readFileSync(file));
    out.ok = true;
    if (parser.isSimplifiedDuisOutputResponse(doc)) {
      out.kind = 'response';
      out.code = doc.header.responseCode;
      const rid = doc.header.requestId;
      out.requestId = rid ? `${rid.originatorId}:${rid.targetId}:${rid.counter}` : null;
      const body = doc.body;
      if (body.ResponseMessage) {
        const keys = Object.keys(body.ResponseMessage).filter(
          (k) => k !== 'ServiceReference' && k !== 'ServiceReferenceVariant');
        out.payload = keys.length ? keys.join(',') : 'NoBody';
      } else {
        out.payload = Object.keys(body).join(',');
      }
    } else {
      out.kind = 'request';
    }
  } catch (e) {
    out.error = String(e && e.message ? e.message : e);
  }
  console.log(JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}
