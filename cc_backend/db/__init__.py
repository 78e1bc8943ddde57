"""Database layer: engine, the SQLAlchemy Core tables of upstream schema 11, migrations."""
