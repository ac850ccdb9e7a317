"""tgsearch: Telegram Group Search."""

__version__ = "0.1.0"
