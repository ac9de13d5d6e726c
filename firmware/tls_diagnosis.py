# tls_diagnosis: why a CSMS ended our TLS handshake, for the security event of a failed
# connection (firmware/connection.py): no TLS version >= 1.2 (InvalidTLSVersion) or none of the
# cipher suites OCPP 2.0.1 allows (InvalidTLSCipherSuite). MIT licence.
#
# mbedTLS reports both the same way when it offers only OCPP's suites: the server closes the
# connection (MBEDTLS_ERR_SSL_CONN_EOF) instead of answering. A second handshake with the TLS
# library's own suites tells them apart. Loaded only for such a failure (heap).

import asyncio
import time

from micropython import const

import ws

NO_SUITE = const("the server offers none of the OCPP 2.0.1 TLS 1.2 cipher suites")


async def diagnose(url, timeout_ms):
    """Why a server ended our TLS handshake (CONN_EOF): one handshake with the library's own
    suites, not checking the certificate, then closed without a byte of HTTP (two bytes of
    CRLF, which an HTTP server skips, tell when the handshake is over). OSError(NO_SUITE)
    when it gets through (the server takes only suites OCPP does not allow), TlsVersionError
    when the server speaks only TLS < 1.2, None when it fails as ours did (not the suites)."""
    import ssl

    host, port = ws.parse_url(url)[1:3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_NONE
    s = None
    try:
        s = (await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host))[0].s
        end = time.ticks_add(time.ticks_ms(), timeout_ms)
        while time.ticks_diff(end, time.ticks_ms()) > 0:
            if s.write(b"\r\n"):  # None while the handshake goes on
                return OSError(NO_SUITE)
            await asyncio.sleep_ms(20)
    except OSError as e:
        e = ws._tls_error(e)
        if isinstance(e, ws.TlsVersionError):
            return e
    except Exception:
        pass
    finally:
        if s is not None:
            s.close()
    return None
