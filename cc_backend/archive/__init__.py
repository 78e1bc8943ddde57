"""Job archive: file backend, format version 3, cluster configuration and nodelists."""

#: Archive format version this backend reads and writes (``version.txt`` at the archive root).
ARCHIVE_VERSION = 3
