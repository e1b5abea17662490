"""The process: signals, reload and watchdog, systemd glue, the --workers supervisor."""
