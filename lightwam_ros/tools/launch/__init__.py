"""Bring-up: the launch plan (nodes, parameter files, topics) and the processes that run it."""
