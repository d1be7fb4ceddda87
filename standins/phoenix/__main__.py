"""`python -m standins.phoenix --port-www N --port-app M`: serve both hosts until interrupted."""
from __future__ import annotations

import argparse
import signal
import threading

from standins.phoenix.site import ServedPhoenix


def main() -> None:
    p = argparse.ArgumentParser(description="replydesk stand-in: phoenix (the MeetMe single-page app)")
    p.add_argument("--port-www", type=int, default=8311)
    p.add_argument("--port-app", type=int, default=8312)
    p.add_argument("--brand", default="MeetMe")
    a = p.parse_args()
    served = ServedPhoenix(a.port_www, a.port_app, a.brand).start()
    print(f"phoenix: www {served.www_url}  app {served.app_url}  admin {served.app_url}/_admin",
          flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    served.stop()


if __name__ == "__main__":
    main()
