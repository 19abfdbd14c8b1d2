"""Where caaspp keeps its own files: the config dir and the data dir.

Both can be moved with an environment variable, so tests and unattended jobs isolate them.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "caaspp"
CONFIG_DIR_ENV = "CAASPP_CONFIG_DIR"
DATA_DIR_ENV = "CAASPP_DATA_DIR"


def config_dir() -> Path:
    """The folder of config.toml: $CAASPP_CONFIG_DIR, else the platform's user config dir."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """The folder of the audit log: $CAASPP_DATA_DIR, else the platform's user data dir."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
