// Verify a webhook that `automations` delivered, with Node 20's built-ins only.
//
// A webhook integration with a signing secret signs every request twice:
//
// - Standard Webhooks (https://www.standardwebhooks.com/): the headers `webhook-id`,
//   `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256>` of
//   "{webhook-id}.{webhook-timestamp}.{body}". The HMAC key is the base64-decoded part after
//   `whsec_` of a secret that starts with `whsec_`, else the secret's UTF-8 bytes.
// - `X-Wandb-Signature: <base64 HMAC-SHA256 of the body>`, keyed by the secret's UTF-8
//   bytes (the whole secret, `whsec_` included).
//
// Import `verifyStandardWebhooks` and `verifyWandb` in your receiver, and call them with the
// raw body (a Buffer of the bytes received, before any JSON parsing). Or run this file:
//
//     SIGNING_SECRET=whsec_... node verify_signature.mjs BODY_FILE 'webhook-id: ...' \
//         'webhook-timestamp: ...' 'webhook-signature: v1,...' 'x-wandb-signature: ...'
//
// It reads the body from BODY_FILE (`-` for stdin) and each header from an argument
// `name: value` (names in any case), checks both signatures, and exits 0 when the delivery
// is genuine, 1 when it is not (saying why on stderr), 2 on a usage error.

import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

// A delivery whose timestamp is further than this from now (either way) is refused, so that
// a captured delivery cannot be replayed later.
export const TOLERANCE_SECONDS = 5 * 60;

function hmacBase64(key, message) {
  return createHmac("sha256", key).update(message).digest("base64");
}

// Compares two strings in constant time (for strings of the same length).
function sameString(a, b) {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

// The HMAC key of the Standard Webhooks signature.
export function standardWebhooksKey(secret) {
  return secret.startsWith("whsec_")
    ? Buffer.from(secret.slice("whsec_".length), "base64")
    : Buffer.from(secret, "utf8");
}

// Checks `webhook-signature`; returns null when it is valid, else why not. `headers` maps
// lower-case header names to values (as Node's `req.headers` does); `body` is a Buffer.
export function verifyStandardWebhooks(secret, headers, body, nowSeconds = Date.now() / 1000) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) {
    return "missing webhook-id, webhook-timestamp or webhook-signature";
  }
  if (!/^[0-9]+$/.test(timestamp)) {
    return "webhook-timestamp is not a number";
  }
  if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
    return "webhook-timestamp is more than 5 minutes away from now";
  }
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), body]);
  const expected = hmacBase64(standardWebhooksKey(secret), signed);
  // The header may hold several signatures, separated by spaces: one must match.
  for (const signature of signatures.split(" ")) {
    const comma = signature.indexOf(",");
    if (comma < 0) continue;
    const version = signature.slice(0, comma);
    if (version === "v1" && sameString(signature.slice(comma + 1), expected)) {
      return null;
    }
  }
  return "webhook-signature does not match";
}

// Checks `X-Wandb-Signature`; returns null when it is valid, else why not.
export function verifyWandb(secret, header, body) {
  if (!header) {
    return "missing x-wandb-signature";
  }
  const expected = hmacBase64(Buffer.from(secret, "utf8"), body);
  return sameString(header, expected) ? null : "x-wandb-signature does not match";
}

function main(argv) {
  const secret = process.env.SIGNING_SECRET;
  if (argv.length < 1 || !secret) {
    console.error("usage: SIGNING_SECRET=... node verify_signature.mjs BODY_FILE 'name: value'...");
    return 2;
  }
  const headers = {};
  for (const arg of argv.slice(1)) {
    const colon = arg.indexOf(":");
    if (colon < 0) {
      console.error(`not a header 'name: value': ${JSON.stringify(arg)}`);
      return 2;
    }
    headers[arg.slice(0, colon).trim().toLowerCase()] = arg.slice(colon + 1).trim();
  }
  let body;
  try {
    body = readFileSync(argv[0] === "-" ? 0 : argv[0]);
  } catch (e) {
    console.error(`cannot read the body: ${e.message}`);
    return 2;
  }
  const problems = [
    verifyStandardWebhooks(secret, headers, body),
    verifyWandb(secret, headers["x-wandb-signature"], body),
  ].filter((p) => p !== null);
  if (problems.length > 0) {
    console.error(`invalid: ${problems.join("; ")}`);
    return 1;
  }
  console.log("valid");
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
