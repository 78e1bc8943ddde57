"""The Textual terminal UI (``cc-backend tui``): jobs, job details, users, projects, tags and clusters in a terminal."""
