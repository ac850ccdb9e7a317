"""Cleaning steps shared by the readers: markup, links, titles, chrome, stitching, digests."""
