"""newsmon's services: fetcher, cleaner, detector, alerter, and their common runtime."""

__version__ = "0.1.0"
