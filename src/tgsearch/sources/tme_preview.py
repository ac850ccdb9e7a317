"""(being written)"""
from __future__ import annotations

NAME = "tme_preview"


def sniff(path, head):
    return False


def read(path, ctx):
    raise NotImplementedError
