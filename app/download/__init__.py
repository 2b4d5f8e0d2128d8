"""Downloading: the piece state, source connections, the engine, its Qt pump and the queue.

- ``layout``: where unfinished data lives (a hidden folder inside the download folder).
- ``problems``: why a download cannot go on, as codes with parameters.
- ``part_state``: which pieces of a ``.part`` are verified, saved beside it.
- ``source``: one blocking transfer connection to a sharing peer.
- ``engine``: ``PieceDownloader``, the blocking engine (any thread, no Qt).
- ``pump``: ``FilePump``, the engine in its own QThread, reporting through signals.
- ``transfer``: ``Transfer`` and the rules for reloading a saved queue.
- ``manager``: ``TransferManager``, the queue, its pumps, retries and start-up adoption.
"""
