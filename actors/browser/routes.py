"""Where a site's pages are: routes of the site spec (`paths`, `login.success_url`) made into
URLs on its hosts, and URLs compared with routes.

A route is a path on `base_url` (`/chat/{conversation_id}`), a path on a named host
(`{app}/#chat`) or an absolute URL. A URL is at a route when its origin is the route's (sites
with `hosts` only: a one-host site may be reached under another name) and its path, plus its
query when the route has one, plus its fragment when the route has one, are the route's. So a
hash-routed app's pages (`/#chat`, `/#chat/member/1/chat`) are told apart, and a path-routed
site's pages keep comparing by path as before. Conversation ids are read the same way from an
inbox item's full link.
"""
from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

from contracts.sitespec import SiteConf

_HOST = re.compile(r"^\{([a-z0-9_]+)\}")
ID = "{conversation_id}"


def _key(url: str, route: str) -> str:
    """The part of `url` a route of this shape compares: path, ?query, #fragment."""
    parts = urlsplit(url)
    key = parts.path or "/"
    if "?" in route:
        key += "?" + parts.query
    if "#" in route:
        key += "#" + parts.fragment
    return key


class Routes:
    def __init__(self, site: SiteConf, base_url: str, hosts: dict[str, str] | None = None):
        self.site = site
        self.base = base_url.rstrip("/")
        self.hosts = {k: v.rstrip("/") for k, v in (hosts or {}).items()}
        for name, host in site.hosts.items():     # a config made without them: the spec's URLs
            self.hosts.setdefault(name, host.url.rstrip("/"))
        conv = self.absolute(site.paths["conversation"])
        prefix, _, suffix = _key(conv, conv).partition(ID)
        self._conv_route = conv
        self._conv_re = re.compile("^" + re.escape(prefix) + r"([^/?#&]+)" + re.escape(suffix) + "$")

    def absolute(self, route: str) -> str:
        """The route as a URL (`{conversation_id}` left in place)."""
        m = _HOST.match(route)
        if m and m.group(1) in self.hosts:
            return self.hosts[m.group(1)] + route[m.end():]
        if route.startswith(("http://", "https://")):
            return route
        return self.base + route

    def url(self, key: str, **kw: str) -> str:
        return self.absolute(self.site.paths[key]).replace(ID, kw.get("conversation_id", ID))

    def _origin(self, url: str) -> str:
        p = urlsplit(url)
        return f"{p.scheme}://{p.netloc}"

    def at(self, url: str, route_url: str) -> bool:
        """Whether `url` is the page of `route_url` (an absolute route from url() / absolute())."""
        if self.site.hosts and self._origin(url) != self._origin(route_url):
            return False
        return _key(url, route_url) == _key(route_url, route_url)

    def starts(self, url: str, route_url: str) -> bool:
        """Whether `url` is at `route_url` or under it (`#meet` also matches `#meet/...`)."""
        if self.site.hosts and self._origin(url) != self._origin(route_url):
            return False
        return _key(url, route_url).startswith(_key(route_url, route_url))

    def on_site(self, url: str) -> bool:
        """Whether `url` is a page of this site (any of its hosts), e.g. not about:blank."""
        return self._origin(url) in {self._origin(u) for u in (self.base, *self.hosts.values())}

    def conversation_id(self, href: str, page_url: str) -> str | None:
        """The conversation a link names (resolved against the page it is on), or None."""
        m = self._conv_re.match(_key(urljoin(page_url, href), self._conv_route))
        return m.group(1) if m else None
