"""Offline analysis of recorded bags: repair, observations, samples, the offline check report."""
