#!/usr/bin/env bash
# Lints infra/template.yaml:
# - cfn-lint on the template (fails on errors; warnings are printed);
# - cfn-lint on the template as SAM translates it (fails on warnings too): with the SAM
#   transform declared, cfn-lint skips rules such as W3037 (unknown IAM action), which it
#   only applies to the plain CloudFormation that `sam deploy` sends;
# - checkov (fails on any failed check that the template does not suppress with a reason
#   in the resource's Metadata).
# The tools come from PyPI into .venv-infra, a venv of their own: checkov pins many
# dependencies that would clash with moto's in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-infra
if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/cfn-lint" ] ||
    ! "$venv/bin/python" -c 'import samtranslator' 2>/dev/null; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    # Tested with cfn-lint 1.58, aws-sam-translator 1.115 and checkov 3.3.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'cfn-lint>=1.30,<2' 'aws-sam-translator>=1.90,<2' 'checkov>=3.2,<4'
fi

template=infra/template.yaml
translated=$(mktemp --suffix=.json)
trap 'rm -f "$translated"' EXIT

"$venv/bin/cfn-lint" --non-zero-exit-code error -- "$template"
echo "cfn-lint: $template passed"

# What `sam package` and `sam deploy` do, offline: code locations become S3 objects, then
# the SAM transform expands the template (the region only fills pseudo parameters).
AWS_DEFAULT_REGION=us-east-1 "$venv/bin/python" - "$template" >"$translated" <<'EOF'
import json
import sys

from cfnlint.decode import decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform

template, errors = decode(sys.argv[1])
if errors:
    sys.exit("\n".join(str(e) for e in errors))
template = json.loads(json.dumps(template))  # plain dicts and lists
for name, resource in template["Resources"].items():
    if resource["Type"] == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = f"s3://bundle-bucket/{name}.zip"


class NoManagedPolicies:
    def load(self):
        return {}


try:
    print(json.dumps(transform(template, {}, NoManagedPolicies()), indent=1))
except InvalidDocumentException as e:
    sys.exit("\n".join(f"SAM transform: {c.message}" for c in e.causes))
EOF
if ! "$venv/bin/cfn-lint" --non-zero-exit-code warning -- "$translated"; then
    trap - EXIT
    echo "cfn-lint: the translated template FAILED; it is kept at $translated" >&2
    exit 1
fi
echo "cfn-lint: $template as SAM translates it passed"

# --skip-download: no call to the vendor's platform (offline, and nothing to send there).
# Its report is shown only when a check failed.
if ! report=$("$venv/bin/checkov" -f "$template" --framework cloudformation --compact \
    --quiet --skip-download 2>&1); then
    echo "$report"
    echo "checkov: $template FAILED" >&2
    exit 1
fi
echo "checkov: $template passed ($(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' <<<"$report"))"
