"""Everything services share on the wire: messages, stream names, configuration."""

from contracts.config import ConfigError, NewsmonConfig, load_config
from contracts.messages import (
    SCHEMA_VERSION,
    CleanArticle,
    DeadLetter,
    JoinReason,
    MatchedTerm,
    RawArticle,
    StoryEvent,
    StoryMember,
    StorySnapshot,
    TopicAlert,
    WireModel,
)
from contracts.sources import SourceConfig
from contracts.topics import TopicConfig

__all__ = [
    "SCHEMA_VERSION",
    "CleanArticle",
    "ConfigError",
    "DeadLetter",
    "JoinReason",
    "MatchedTerm",
    "NewsmonConfig",
    "RawArticle",
    "SourceConfig",
    "StoryEvent",
    "StoryMember",
    "StorySnapshot",
    "TopicAlert",
    "TopicConfig",
    "WireModel",
    "load_config",
]
