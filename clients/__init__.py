"""Clients of the Steno server: command-line streamer and browser page."""
