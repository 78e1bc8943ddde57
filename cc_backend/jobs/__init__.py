"""Jobs: the one filter/sort/page query module and the job store."""
