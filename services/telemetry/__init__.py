"""What the mesh shows of itself: OpenTelemetry traces and metrics, Prometheus, call logs."""
