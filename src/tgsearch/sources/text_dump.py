"""(being written)"""
from __future__ import annotations

NAME = "text_dump"


def sniff(path, head):
    return False


def read(path, ctx):
    raise NotImplementedError
