"""Files with secrets in them (API keys, DSNs) are private from their first byte."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only: mkstemp creates a new file with
    mode 0600 (O_EXCL), which is renamed over ``path``; never written open and restricted after."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
