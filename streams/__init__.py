"""ccmon stream processors: contact-center KPIs from Kafka to Prometheus."""

__version__ = "0.1.0"
