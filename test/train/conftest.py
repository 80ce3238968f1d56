"""The trainer tests' workspace fixture (helpers in train_fixtures.py)."""
from train_fixtures import workspace  # noqa: F401
