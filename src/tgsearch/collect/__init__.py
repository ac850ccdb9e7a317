"""Collecting posts from the web: `crawl` pages through public t.me/s channel previews."""

from .crawl import ChannelReport, CrawlConfig, Crawler, CrawlError, crawl

__all__ = ["ChannelReport", "CrawlConfig", "Crawler", "CrawlError", "crawl"]
