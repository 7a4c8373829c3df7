"""Kafka clients the way every ccmon command makes them: auth, topics, the producer, broker health."""
