"""Drives a real MLflow tracking server with MlflowClient, for tests/tests/mlflow.rs.

    python mlflow_registry.py TRACKING_URI RECEIVE_URL SECRET WRONG_SECRET MODEL

1. Registers two webhooks for the four registry events at RECEIVE_URL: one signed with
   SECRET, one with WRONG_SECRET.
2. Tests both (MLflow sends its example `model_version.created` payload, synchronously).
3. Creates the registered model MODEL and a version of it, sets the alias `production`
   on that version, then sets and deletes the tag `stage`.

Prints one JSON object: the two test results and the version MLflow gave.
"""

import json
import sys

from mlflow import MlflowClient

EVENTS = [
    "model_version.created",
    "model_version_alias.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
]


def tested(client, webhook):
    result = client.test_webhook(webhook.webhook_id)
    return {
        "success": result.success,
        "response_status": result.response_status,
        "response_body": result.response_body,
        "error_message": result.error_message,
    }


def main(tracking_uri, receive_url, secret, wrong_secret, model):
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    good = client.create_webhook(
        name="automations", url=receive_url, events=EVENTS, secret=secret
    )
    wrong = client.create_webhook(
        name="automations-wrong-secret", url=receive_url, events=EVENTS, secret=wrong_secret
    )
    report = {"test_good": tested(client, good), "test_wrong": tested(client, wrong)}

    client.create_registered_model(model)
    version = client.create_model_version(
        name=model, source="s3://models/fraud/7", run_id=None, description="first cut",
        tags={"team": "risk"},
    )
    client.set_registered_model_alias(model, "production", version.version)
    client.set_model_version_tag(model, version.version, "stage", "canary")
    client.delete_model_version_tag(model, version.version, "stage")
    report["version"] = version.version
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
