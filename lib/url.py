# url: split the URLs our clients open (ws/wss for the CSMS, http/https for downloads and
# uploads, ftp for log uploads).
# MIT licence. Ours because MicroPython ships no URL parser.


def split(url, plain, secure, lenient=False, ports=(80, 443)):
    """(tls, host, port, path) of `url`, whose scheme is `plain` or `secure` (any case; the
    default ports are `ports`). The path keeps its query; IPv6 literals go in brackets. Printable
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
        tls, port = False, ports[0]
    elif scheme == secure:
        tls, port = True, ports[1]
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


def userinfo(url):
    """(user, password) of the `user:password@` in url, %-decoded; password None without a
    colon; None without credentials. Raises ValueError for a bad %-escape."""
    rest = url[url.find("://") + 3 :] if "://" in url else url
    for sep in "/?#":
        rest = rest.split(sep, 1)[0]
    if "@" not in rest:
        return None
    cred = rest.rsplit("@", 1)[0]
    user, colon, password = cred.partition(":")
    return unquote(user), (unquote(password) if colon else None)


def unquote(s):
    """s with its %XX escapes decoded (UTF-8). Raises ValueError for a bad escape."""
    if "%" not in s:
        return s
    parts = s.split("%")
    out = bytearray(parts[0].encode())
    for p in parts[1:]:
        hx = p[:2]
        if len(hx) != 2 or hx.strip("0123456789abcdefABCDEF"):
            raise ValueError("bad %-escape")
        out.append(int(hx, 16))
        out += p[2:].encode()
    return out.decode()
