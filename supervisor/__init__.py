"""The supervisor: starts the actors from conf/, keeps them alive, routes events between them.
Depends on actors/ and contracts/; nothing depends on it."""
