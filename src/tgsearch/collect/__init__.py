"""Collecting posts from the web: `crawl` pages through public t.me/s channel previews; `safe_fetch` fetches links."""

from .crawl import ChannelReport, CrawlConfig, Crawler, CrawlError, crawl

__all__ = ["ChannelReport", "CrawlConfig", "Crawler", "CrawlError", "crawl"]
