"""Asterisk's queue_log (file or realtime table) as ccmon events: docs/sources/asterisk.md."""
