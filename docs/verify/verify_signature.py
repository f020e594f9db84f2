#!/usr/bin/env python3
"""Verify a webhook that `automations` delivered, with the Python standard library only.

A webhook integration with a signing secret signs every request twice:

- Standard Webhooks (https://www.standardwebhooks.com/): the headers `webhook-id`,
  `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256>` of
  "{webhook-id}.{webhook-timestamp}.{body}". The HMAC key is the base64-decoded part after
  `whsec_` of a secret that starts with `whsec_`, else the secret's UTF-8 bytes.
- `X-Wandb-Signature: <base64 HMAC-SHA256 of the body>`, keyed by the secret's UTF-8 bytes
  (the whole secret, `whsec_` included).

Copy `verify_standard_webhooks` and `verify_wandb` into your receiver, and call them with
the raw body (the bytes received, before any JSON parsing). Or run this file:

    SIGNING_SECRET=whsec_... python3 verify_signature.py BODY_FILE 'webhook-id: ...' \\
        'webhook-timestamp: ...' 'webhook-signature: v1,...' 'x-wandb-signature: ...'

It reads the body from BODY_FILE (`-` for stdin) and each header from an argument
`name: value` (names in any case), checks both signatures, and exits 0 when the delivery
is genuine, 1 when it is not (saying why on stderr), 2 on a usage error.
"""

import base64
import hashlib
import hmac
import os
import sys
import time

# A delivery whose timestamp is further than this from now (either way) is refused, so
# that a captured delivery cannot be replayed later.
TOLERANCE_SECONDS = 5 * 60


def _hmac_b64(key: bytes, message: bytes) -> bytes:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest())


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks signature."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode("utf-8")


def verify_standard_webhooks(secret: str, headers: dict, body: bytes, now: float = None) -> str:
    """Checks `webhook-signature`; returns None when it is valid, else why not.

    `headers` maps lower-case header names to values."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not a number"
    now = time.time() if now is None else now
    if abs(now - sent_at) > TOLERANCE_SECONDS:
        return "webhook-timestamp is more than 5 minutes away from now"
    expected = _hmac_b64(standard_webhooks_key(secret), f"{msg_id}.{timestamp}.".encode() + body)
    # The header may hold several signatures, separated by spaces: one must match.
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return None
    return "webhook-signature does not match"


def verify_wandb(secret: str, header: str, body: bytes) -> str:
    """Checks `X-Wandb-Signature`; returns None when it is valid, else why not."""
    if not header:
        return "missing x-wandb-signature"
    expected = _hmac_b64(secret.encode("utf-8"), body)
    if hmac.compare_digest(header.encode(), expected):
        return None
    return "x-wandb-signature does not match"


def main(argv) -> int:
    secret = os.environ.get("SIGNING_SECRET")
    if len(argv) < 2 or not secret:
        print("usage: SIGNING_SECRET=... verify_signature.py BODY_FILE 'name: value'...", file=sys.stderr)
        return 2
    headers = {}
    for arg in argv[2:]:
        name, sep, value = arg.partition(":")
        if not sep:
            print(f"not a header 'name: value': {arg!r}", file=sys.stderr)
            return 2
        headers[name.strip().lower()] = value.strip()
    try:
        if argv[1] == "-":
            body = sys.stdin.buffer.read()
        else:
            with open(argv[1], "rb") as f:
                body = f.read()
    except OSError as e:
        print(f"cannot read the body: {e}", file=sys.stderr)
        return 2
    problems = [
        p
        for p in (
            verify_standard_webhooks(secret, headers, body),
            verify_wandb(secret, headers.get("x-wandb-signature"), body),
        )
        if p
    ]
    if problems:
        print("invalid: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
