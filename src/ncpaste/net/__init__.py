"""The trio shell: sockets, timeouts, tasks. All protocol decisions live in core."""
