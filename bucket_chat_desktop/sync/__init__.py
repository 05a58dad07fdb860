"""Reading rooms from storage into a verified ledger, and writing signed segments."""
