"""The embedded HTTP server (REST, GraphQL, web UI); built in a later issue."""
