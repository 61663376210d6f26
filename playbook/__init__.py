"""The Security Dashboard verification and game-day suite: the playbook as code."""

__version__ = "0.1.0"
