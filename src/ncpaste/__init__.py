"""ncpaste: a terminal-native paste service (netcat in, durable URL out)."""

__version__ = "0.1.0"
