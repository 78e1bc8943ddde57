"""GraphQL at /query: tartiflette engine, scalars and resolvers over cc_backend (upstream schema.graphqls)."""
