"""Repository root conftest: keeps the root on sys.path so tests can import fixtures."""
