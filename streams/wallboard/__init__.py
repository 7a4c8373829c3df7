"""The supervisors' pages: the queue wallboard and the agents page, and the JSON they poll."""
