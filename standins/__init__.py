"""Local stand-ins for the outside systems (chat site, AI endpoint, Google Sheets, MongoDB server).

Each one is a real server on 127.0.0.1; tests and the demo start them. They are never imported by
the production code paths (actors/, supervisor/).
"""
