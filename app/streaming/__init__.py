"""Watching a video while it downloads: a local HTTP stream server and the user's player."""
