"""JSON and JSONL: entry point (`reader`), line chunks (`lines`), arrays (`array`), exact types (`types`), kind drift (`drift`)."""
