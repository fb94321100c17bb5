"""Hostile-user cases (issue 10): each test failed on the code before its fix."""
