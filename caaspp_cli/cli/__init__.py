"""The Typer layer: option parsing and rendering only; the work is done in the core."""
