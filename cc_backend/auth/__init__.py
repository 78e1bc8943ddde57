"""Authentication and authorisation: users and roles, permissions, tokens and keys, web sessions, LDAP."""
