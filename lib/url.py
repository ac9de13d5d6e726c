# url: split the URLs our clients open (ws/wss for the CSMS, http/https for downloads).
# MIT licence. Ours because MicroPython ships no URL parser.


def split(url, plain, secure, lenient=False):
    """(tls, host, port, path) of `url`, whose scheme is `plain` or `secure` (any case; ports
    80 and 443 by default). The path keeps its query; IPv6 literals go in brackets. Printable
    ASCII only, so nothing in it can inject into a request line or header. A fragment or
    credentials (`user:pw@`) are refused, or with `lenient` dropped (never sent).
    Raises ValueError."""
    if not isinstance(url, str) or not url:
        raise ValueError("bad url")
    for c in url:
        if c <= " " or c > "~":
            raise ValueError("bad url")
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme == plain:
        tls, port = False, 80
    elif scheme == secure:
        tls, port = True, 443
    else:
        raise ValueError("url must start with %s:// or %s://" % (plain, secure))
    rest = url[i + 3 :]
    if "#" in rest:
        if not lenient:
            raise ValueError("fragment in url")
        rest = rest.split("#", 1)[0]
    j = len(rest)
    for sep in "/?":
        k = rest.find(sep)
        if 0 <= k < j:
            j = k
    netloc, path = rest[:j], rest[j:]
    if not path or path[0] == "?":
        path = "/" + path
    if "@" in netloc:
        if not lenient:
            raise ValueError("credentials in url")
        netloc = netloc.rsplit("@", 1)[-1]
    if netloc[:1] == "[":
        k = netloc.find("]")
        if k < 0:
            raise ValueError("bad IPv6 host")
        host, tail = netloc[1:k], netloc[k + 1 :]
    else:
        k = netloc.find(":")
        host, tail = (netloc, "") if k < 0 else (netloc[:k], netloc[k:])
    if not host:
        raise ValueError("no host in url")
    if tail:
        digits = tail[1:]
        if tail[0] != ":" or not digits or digits.strip("0123456789"):
            raise ValueError("bad port")
        port = int(digits)
        if not 0 < port < 65536:
            raise ValueError("bad port")
    return tls, host, port, path
