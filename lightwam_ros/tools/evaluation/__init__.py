"""Closed-loop evaluation in the simulators and scripted demonstrations."""
