"""Suite-wide set-up: the signing key lives in a key file of this test session, not the user's.

Set at import, before any test runs, so worker processes that tests start (the Lambda
emulator's, the CLI's) inherit it and share the client's key, as deployed functions do.
"""

import os
import shutil
import tempfile
from pathlib import Path

_KEY_DIR = tempfile.mkdtemp(prefix="faasdag-test-key-")
os.environ["FAASDAG_SIGNING_KEY_FILE"] = str(Path(_KEY_DIR) / "signing.key")
os.environ.pop("FAASDAG_SIGNING_KEY", None)


def pytest_unconfigure(config):
    shutil.rmtree(_KEY_DIR, ignore_errors=True)
