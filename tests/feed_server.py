"""A product feed served on 127.0.0.1, answering conditional GETs like a shop platform does."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FeedServer:
    """A feed on 127.0.0.1 that answers conditional GETs like a shop platform (or, with
    `validators=False`, like a plain server that sends neither ETag nor Last-Modified)."""

    def __init__(self, body: bytes, *, validators: bool = True) -> None:
        self.body, self.validators, self.requests = body, validators, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(dict(self.headers))
                if self.path != "/feeds/google.xml":
                    self.send_error(404)
                    return
                etag = '"' + hashlib.sha256(server.body).hexdigest()[:16] + '"'
                if server.validators and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.body)))
                if server.validators:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feeds/google.xml"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()


def rss_feed(*items: tuple[str, str]) -> bytes:
    body = "".join(
        f"<item><g:id>{i}</g:id><title>{t}</title><g:price>5.00 EUR</g:price></item>" for i, t in items
    )
    return f'<rss xmlns:g="http://base.google.com/ns/1.0"><channel>{body}</channel></rss>'.encode()
