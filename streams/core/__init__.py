"""Pure KPI arithmetic: no Kafka, no Faust, no I/O. Everything here is unit-tested alone."""
