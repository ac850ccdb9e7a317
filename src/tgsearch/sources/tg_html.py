"""(being written)"""
from __future__ import annotations

NAME = "tg_html"


def sniff(path, head):
    return False


def read(path, ctx):
    raise NotImplementedError
