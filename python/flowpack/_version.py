"""The package's version: always the ``flowpack`` binary's (a Rust test keeps them equal)."""

__version__ = "0.1.0"
