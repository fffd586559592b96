"""The compiler: networks and configs to command streams and memory images, one core or a cluster."""
