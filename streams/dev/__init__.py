"""For development, tests and demos only: the local Kafka broker, the in-process pipeline (both
stages without Kafka) and the kill points crash tests stop a worker at."""
