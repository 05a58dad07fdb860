"""The room audit: what was checked, what was found and what each finding means."""
