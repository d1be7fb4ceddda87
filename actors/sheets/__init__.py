"""Google Sheets log: rows for messages and drafts, written in batches by one writer actor."""
