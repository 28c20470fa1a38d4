"""Every service by name, in pipeline order."""

from __future__ import annotations

from services.alerter.app import create_service as create_alerter
from services.cleaner.app import create_service as create_cleaner
from services.common.runtime import ServiceFactory
from services.detector.app import create_service as create_detector
from services.fetcher.app import create_service as create_fetcher

SERVICES: dict[str, ServiceFactory] = {
    "fetcher": create_fetcher,
    "cleaner": create_cleaner,
    "detector": create_detector,
    "alerter": create_alerter,
}
