"""Errors every layer raises for what the user gave wrong."""


class SettingsError(ValueError):
    """A setting the user gave is wrong; the message says what and what to do."""
