"""Server: settings, lifecycle, the WebSocket and HTTP adapters, access, liveness, metrics."""
