"""Log output: one line per event, as text, logfmt or JSON (``--log-format``).

Events carry structured fields (``event(log, "paste.created", key=..., size=...)``)
so logfmt and JSON lines are machine-readable; text lines stay readable. No
paste body and no token is ever a field: callers pass keys, sizes, addresses.
Logs go to stderr, where journald picks them up.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_LEVEL_NAMES = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (cheap when the level is off)."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s %s", name, _logfmt_pairs(fields), extra={"event": name, "fields": fields})


# A value made only of these needs no quotes in a logfmt line.
_BARE = re.compile(r"[\w\-.:/\[\]@+]+")


def _quote(value: Any) -> str:
    if type(value) is int or type(value) is float:  # the common fields; never quoted
        return str(value)
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=True)


def _logfmt_pairs(fields: dict[str, Any]) -> str:
    # One line per request on the read path: a list, not a generator.
    return " ".join([f"{key}={_quote(value)}" for key, value in fields.items()])


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        head = f"ts={_timestamp(record)} level={record.levelname.lower()} logger={record.name}"
        fields = getattr(record, "fields", None)
        if fields is not None:
            line = f"{head} event={getattr(record, 'event', '')} {_logfmt_pairs(fields)}".rstrip()
        else:
            line = f"{head} msg={_quote(record.getMessage())}"
        if record.exc_info:
            line += f" error={_quote(self.formatException(record.exc_info))}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields is not None:
            data["event"] = getattr(record, "event", "")
            data.update(fields)
        else:
            data["msg"] = record.getMessage()
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure(level: str, fmt: str, stream: Any = None) -> None:
    """Install the one stderr handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt == "logfmt":
        handler.setFormatter(LogfmtFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # Our formats name no thread, process or source line: skip collecting
    # them for every record (the logging HOWTO's "Optimization"; a request
    # line costs about half as much without).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # The S3 client's libraries: httpcore logs every request, botocore's
    # signer its canonical requests at debug level. One line per engine call
    # is noise next to our one event per paste, and signing details have no
    # place in a log.
    for chatty in ("httpx", "httpcore", "botocore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(_LEVEL_NAMES.get(level, logging.INFO))
