"""Logging: structlog to stderr, human-readable by default, JSON for machines."""

from __future__ import annotations

import logging
import sys

import structlog

from services.common.outage import OUTAGE_FILTER


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Configure structlog and the stdlib loggers of libraries (quieter than ours); FastStream's
    tracebacks of an unreachable Redis become outage reports (`services.common.outage`)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    for noisy in (
        "faststream",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "httpx",
        "trafilatura",
    ):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    logging.getLogger("faststream").addFilter(OUTAGE_FILTER)
