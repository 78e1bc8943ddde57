"""Job archive: file backend, format version 3, cluster configuration and nodelists."""
