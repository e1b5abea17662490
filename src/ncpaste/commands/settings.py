"""The server's settings: the flag table, and flags, environment and config file merged.

Flags win over ``NCPASTE_*`` environment variables, which win over the
``--config`` file, which wins over ``Config``'s defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncpaste.commands.common import parse_store
from ncpaste.config import Address, Config, check
from ncpaste.core import units
from ncpaste.core.addresses import parse_network
from ncpaste.store.factory import check_location


@dataclass(frozen=True)
class Setting:
    flag: str
    field: str
    convert: Callable[[str], Any]
    metavar: str
    help: str
    #: "value" (one value), "list" (repeatable flag; comma-separated in the
    #: environment) or "switch" (a flag without value; 1/0 in the environment).
    kind: str = "value"

    @property
    def env(self) -> str:
        return "NCPASTE_" + self.flag.lstrip("-").replace("-", "_").upper()


def _int(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "1", "yes", "true"):
        return True
    if lowered in ("off", "0", "no", "false"):
        return False
    raise ValueError(f"use on or off, not {text!r}")


def _cidr(text: str) -> str:
    """Checked as every part of the server reads it (core.addresses): a
    CIDR with host bits set is refused, naming the network it probably meant."""
    parse_network(text)
    return text.strip()


SERVE_SETTINGS: tuple[Setting, ...] = (
    Setting("--data-dir", "data_dir", Path, "DIR",
            "where the LMDB store lives (with --store: this node's key pool; default ./data)"),
    Setting("--store", "store", parse_store,
            "s3://BUCKET/PREFIX?endpoint=URL",
            "shared S3-compatible storage for several nodes (default: embedded LMDB in --data-dir); "
            "credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"),
    Setting("--store-cache-ttl", "store_cache_ttl_s", units.parse_seconds, "SECONDS",
            "S3: a node serves a read paste from its cache this long before asking again (default 2)"),
    Setting("--shared-cache-ttl", "shared_cache_ttl_s", lambda text: int(units.parse_seconds(text)), "SECONDS",
            "a cache in front (nginx, a CDN) may serve a read paste this long without asking again: "
            "a deleted paste is gone from it after at most this (Cache-Control s-maxage; default 5)"),
    Setting("--tcp", "tcp", Address.parse, "HOST:PORT", "netcat listener HOST:PORT (default 0.0.0.0:9999)"),
    Setting("--http", "http", Address.parse, "HOST:PORT", "HTTP listener HOST:PORT (default 0.0.0.0:8080)"),
    Setting("--live", "live", lambda text: None if text.strip().lower() == "off" else Address.parse(text),
            "HOST:PORT|off", "live listener: URL first, readers follow (default 0.0.0.0:9998)"),
    Setting("--live-idle-timeout", "live_idle_timeout_s", units.parse_seconds, "SECONDS",
            "live: a paste without -N ends after this long without a byte (default 300)"),
    Setting("--live-max-open", "live_max_open_s", lambda t: float(units.parse_duration(t)), "DURATION",
            "live: the longest a paste may stay open (default 6h)"),
    Setting("--live-per-client", "live_per_client", _int, "N", "live pastes open at once per client (default 4)"),
    Setting("--url", "url", str, "URL", "URL prefix printed to clients (default http://HOSTNAME:HTTPPORT)"),
    Setting("--max-size", "max_paste_bytes", units.parse_size, "SIZE", "largest paste: 100000, 512KiB, 10MiB (default 10MiB)"),
    Setting("--default-expire", "default_expire_s", units.parse_duration, "DURATION",
            "expiry when none is asked for (default 7d)"),
    Setting("--max-expire", "max_expire_s", units.parse_duration, "DURATION",
            "longest expiry a client may ask for (default 90d)"),
    Setting("--sweep-interval", "sweep_interval_s", units.parse_seconds, "SECONDS",
            "how often expired pastes are removed (default 60; every read checks expiry itself)"),
    Setting("--idle-timeout", "idle_timeout_s", units.parse_seconds, "SECONDS",
            "netcat: a paste ends after this long without a byte (default 3s)"),
    Setting("--key-length", "key_length", _int, "N", "characters in a random key, 11..32 (default 12, 69.7 bits)"),
    Setting("--limits", "limits_enabled", _on_off, "on|off", "per-client limits on both ports (default on)"),
    Setting("--pastes-per-minute", "pastes_per_minute", _int, "N", "per client, with a burst of N (default 30)"),
    Setting("--bytes-per-day", "bytes_per_day", units.parse_size, "SIZE", "stored bytes per client per day (default 1GiB)"),
    Setting("--conns-per-client", "connections_per_client", _int, "N", "concurrent connections per client (default 32)"),
    Setting("--max-connections", "max_connections", _int, "N", "concurrent connections in all (default 4096)"),
    Setting("--ipv6-prefix", "ipv6_prefix", _int, "BITS", "IPv6 clients are grouped by this prefix (default 64)"),
    Setting("--allow", "allow", _cidr, "CIDR", "only these may connect (repeatable)", "list"),
    Setting("--deny", "deny", _cidr, "CIDR", "these may not connect; wins over --allow (repeatable)", "list"),
    Setting("--acl-file", "acl_file", Path, "FILE", "'allow CIDR' / 'deny CIDR' lines, re-read on SIGHUP"),
    Setting("--trusted-proxy", "trusted_proxies", _cidr, "CIDR",
            "believe PROXY headers and X-Forwarded-For/Forwarded from these (repeatable)", "list"),
    Setting("--redact", "redact_default", _on_off, "", "mask secrets in every paste, not only redact=1 ones", "switch"),
)


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "logfmt", "json")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text.strip().lower() not in options:
            raise ValueError(f"use one of {', '.join(options)}, not {text!r}")
        return text.strip().lower()

    return convert


def _workers(text: str) -> int:
    if text.strip().lower() == "auto":
        return os.cpu_count() or 1
    count = _int(text)
    if not 1 <= count <= 64:
        raise ValueError("use 1..64 or auto")
    return count


SERVE_SETTINGS = SERVE_SETTINGS + (
    Setting("--workers", "workers", _workers, "N|auto",
            "worker processes sharing the ports and the store (default 1; auto = one per CPU)"),
    Setting("--metrics-allow", "metrics_allow", _cidr, "CIDR",
            "only these may read /metrics (repeatable; default everyone)", "list"),
    Setting("--log-level", "log_level", _choice(LOG_LEVELS), "LEVEL", "debug, info, warning or error (default info)"),
    Setting("--log-format", "log_format", _choice(LOG_FORMATS), "FORMAT",
            "text, logfmt or json: one line per event (default text)"),
)
CONFIG_ENV = "NCPASTE_CONFIG"
# A config file is a few dozen lines; anything bigger is a mistake.
MAX_CONFIG_FILE_BYTES = 1024 * 1024


class ConfigError(Exception):
    """A setting cannot be used; the message names the flag, variable or key."""


def add_server_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", metavar="FILE", type=Path,
                         help=f"TOML file with the same keys as the flags, e.g. max-size = \"10MiB\" [{CONFIG_ENV}]")
    for setting in SERVE_SETTINGS:
        helptext = f"{setting.help} [{setting.env}]"
        if setting.kind == "switch":
            command.add_argument(setting.flag, action="store_const", const="on", help=helptext)
        elif setting.kind == "list":
            command.add_argument(setting.flag, action="append", metavar=setting.metavar, help=helptext)
        else:
            command.add_argument(setting.flag, metavar=setting.metavar, help=helptext)


def _file_values(path: Path | None) -> dict[str, Any]:
    """The --config file's keys, validated against the known settings."""
    if path is None:
        return {}
    try:
        if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
            raise ConfigError(f"config file {str(path)!r} is larger than 1 MiB")
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    known = {setting.flag.lstrip("-") for setting in SERVE_SETTINGS}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"config file {str(path)!r}: unknown key {key!r} (keys are the flag names, e.g. max-size)"
            )
    return data


def _file_raw(setting: Setting, value: Any) -> Any:
    """A TOML value as the text a flag would carry (lists stay lists)."""
    if setting.kind == "list":
        if not isinstance(value, list):
            value = [value]
        return [str(item) for item in value]
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError(f"unsupported value {value!r}")


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> list[tuple[Setting, Any, str]]:
    """Each setting given anywhere, as (setting, converted value, source)."""
    config_path = args.config or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    from_file = _file_values(config_path)
    resolved = []
    for setting in SERVE_SETTINGS:
        key = setting.flag.lstrip("-")
        raw = getattr(args, key.replace("-", "_"))
        source = setting.flag
        if raw is None and setting.env in environ:
            raw, source = environ[setting.env], setting.env
        if raw is None and key in from_file:
            source = f"{config_path}: {key}"
            try:
                raw = _file_raw(setting, from_file[key])
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        if raw is None:
            continue
        try:
            if setting.kind == "list":
                items = raw if isinstance(raw, list) else [x for x in raw.split(",") if x.strip()]
                value: Any = tuple(setting.convert(item) for item in items)
            else:
                value = setting.convert(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        resolved.append((setting, value, source))
    return resolved


def build_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """Config from flags, environment, --config file and defaults. Raises ConfigError."""
    values = {setting.field: value for setting, value, _ in resolve_settings(args, environ)}
    try:
        config = check(Config(**values))
        check_location(config.store)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return config


# Settings whose values are secrets: `ncpaste config` masks them.
SECRET_FIELDS: frozenset[str] = frozenset()


def _toml_value(setting: Setting, value: Any) -> str:
    """A value as TOML in the units a person would write, so the output of
    `ncpaste config` is itself a valid config file."""
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(str(item)) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if setting.convert is units.parse_size:
        return json.dumps(units.format_size(value).replace(" ", "").replace("bytes", ""))
    if setting.convert is units.parse_duration:
        return json.dumps(units.format_duration(value))
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(str(value))


def show_config(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The effective configuration as TOML, each line saying where its value came from."""
    config = build_config(args, environ)
    sources = {setting.field: source for setting, _, source in resolve_settings(args, environ)}
    lines = []
    for setting in SERVE_SETTINGS:
        key = setting.flag.lstrip("-")
        value = getattr(config, setting.field)
        source = sources.get(setting.field, "default")
        if value is None and setting.field == "live":
            lines.append(f'{key} = "off"  # {source}')
        elif value is None:
            lines.append(f"# {key} is not set")
        elif setting.field in SECRET_FIELDS and value:
            lines.append(f'{key} = "********"  # {source}')
        else:
            lines.append(f"{key} = {_toml_value(setting, value)}  # {source}")
    lines.append(f"# URLs handed out: {config.base_url}/KEY")
    return "\n".join(lines) + "\n"


