"""Click commands: the command-line front end over cc_backend."""
