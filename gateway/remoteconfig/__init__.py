"""Remote configuration: ``config.set`` for the keys that are safe to change from the cloud."""

from gateway.remoteconfig.feature import ConfigSetArgs, ConfigSetResult, RemoteConfig

__all__ = ["ConfigSetArgs", "ConfigSetResult", "RemoteConfig"]
