"""The Faust worker: the app, its agents and sweep, the state it keeps and the pages it serves."""
