"""The `distillery` command line (entry point: flows/cli/main.py)."""
