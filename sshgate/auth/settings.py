"""What the settings of the authentication methods share with the rest of the config.

The config (``sshgate.config``) imports the settings models of the auth modules, so the rules they
need live here rather than there: the config takes its name rules from this module too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo

#: The user part of a login name (``alice`` in ``alice+prod/web-0``), as the targets grammar has it.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Group names are passed to Kubernetes as they are: printable ASCII without spaces.
GROUP_NAME = re.compile(r"[!-~]{1,256}")
#: A duration in seconds in the config; 0 usually turns the limit off.
Seconds = Annotated[float, Field(ge=0)]


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """``value`` relative to the folder of the config file being validated (its context's ``base``)."""
    base = (info.context or {}).get("base")
    value = value.expanduser()
    return base / value if base is not None and not value.is_absolute() else value
