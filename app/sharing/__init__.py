"""The peer's sharing side: what may be shared, how it is reached, hashed, cached and listed.

- ``confined``: files and listings reached beneath a shared folder, never through a link.
- ``policy``: ``SharePolicy`` (what is shared) and the folder walk; pure.
- ``hash_cache``: ``HashCache``, digests kept in SQLite between runs; pure.
- ``catalog``: ``SharedFile`` and ``PublishedCatalog``, the announced files by path and hash;
  pure and thread-safe.
- ``jobs``: the scan and hash jobs of the thread pool.
- ``library``: ``Library``, the Qt adapter that ties them together.
"""
