"""A client for the automations server: send events, and log training runs.

>>> from automations_client import Client, Run
>>> client = Client()  # AUTOMATIONS_URL, AUTOMATIONS_KEY, AUTOMATIONS_TEAM
>>> with Run(client, "train", name="sunny-1") as run:  # doctest: +SKIP
...     for step in range(100):
...         run.log({"loss": 1.0 / (step + 1)})
"""

from ._version import __version__
from .client import Client
from .errors import AutomationsError, AutomationsWarning
from .run import Run

__all__ = ["AutomationsError", "AutomationsWarning", "Client", "Run", "__version__"]
