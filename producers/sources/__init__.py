"""Sources: real contact-center platforms' own event feeds, turned into ccmon events (``ccmon ingest``)."""
