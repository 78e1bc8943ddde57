"""Database layer: engine, SQLModel tables of upstream schema 11, migrations."""
