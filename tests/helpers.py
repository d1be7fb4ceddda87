"""Small helpers shared by the tests."""
from standins.stack import wait_for

__all__ = ["wait_for"]
