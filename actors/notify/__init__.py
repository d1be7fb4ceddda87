"""Reviewer notifications (apprise): one per new draft, digests when drafts come faster than
`notify.max_per_minute`, and alerts on `needs_login`, failed children and dead letters.

`messages.py` turns events into notes, `dispatcher.py` stores them and delivers them (rate,
digest, backoff, dead-lettering; clock injected), `actor.py` is the Ray actor the supervisor's
`notify` consumers hand events to."""
