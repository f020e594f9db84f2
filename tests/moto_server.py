"""moto's server, taking DynamoDB's requests one at a time.

DynamoDB applies a conditional write atomically. moto's threaded server checks a condition
and then writes, so two concurrent writes naming one version can both pass, and the
conformance suites (which prove that concurrent writers lose nothing) would fail now and
then for a reason real DynamoDB does not have. One lock around DynamoDB's requests gives
back the guarantee; SQS and Secrets Manager stay concurrent, so long polls block nothing.

Usage: the same as moto_server (`python tests/moto_server.py -H 127.0.0.1 -p PORT`).
"""

import threading

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_dynamodb = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__


def _one_dynamodb_request_at_a_time(self, environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with _dynamodb:
            return _dispatch(self, environ, start_response)
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _one_dynamodb_request_at_a_time

if __name__ == "__main__":
    server.main()
