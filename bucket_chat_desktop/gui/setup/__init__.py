"""The first-run setup: who you are (identity and key storage), where your rooms live, done."""
