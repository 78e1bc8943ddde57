"""Job taggers: application detection from job scripts and rule-based job classes."""
