"""peers.py: the real peers the sidecar talks to in tests: nginx (HTTPS,
HTTPS that requires SNI, TLS stream relay) and small Python servers (echo,
silent, sender, an OpenSSL server that requires a client certificate, and
on top of it an HTTP/1.1 keep-alive server and upstreams that misbehave)."""

import hashlib
import http.server
import itertools
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading

from tests.lib.support import (DEFAULT_TIMEOUT, NGINX_BIN, NGINX_STREAM_MODULE, SERVER_NAME,
                               Process, free_port, read_text, wait_port, wait_until,
                               write_file)


# ---- Python peers -------------------------------------------------------------


class TcpServer:
    """TcpServer accepts on 127.0.0.1 in a thread and runs handler(conn) for
    each connection in its own thread. close() stops accepting and closes
    every connection it still holds."""

    def __init__(self, handler, port=None, host="127.0.0.1"):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port or 0))
        self.sock.listen(128)
        self.host, self.port = self.sock.getsockname()
        self.accepted = 0
        self.conns = []
        self.lock = threading.Lock()
        self.closing = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closing:
                    conn.close()
                    return
                self.accepted += 1
                self.conns.append(conn)
                extra = self._accepted(conn)
            threading.Thread(target=self._run, args=(conn,) + extra, daemon=True).start()

    def _accepted(self, conn):
        """_accepted runs under the lock as a connection is accepted, in
        accept order; what it returns is passed to _run after conn."""
        return ()

    def _run(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.thread.join(timeout=5)


def echo_handler(conn):
    """echo_handler echoes until EOF, then half-closes (shutdown SHUT_WR)."""
    conn.settimeout(60)
    while True:
        data = conn.recv(1 << 16)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


def silent_handler(conn):
    """silent_handler accepts and never answers; it returns when the peer
    closes (or after 60 s)."""
    conn.settimeout(60)
    try:
        while conn.recv(1 << 16):
            pass
    except OSError:
        pass


def sender_handler(payload):
    """sender_handler returns a handler that sends `payload` as soon as the
    connection opens and then ends its side (FIN) without waiting for the
    peer; it then drains what the peer sends, so that no reset destroys
    data still in flight."""

    def handler(conn):
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(10)
        while conn.recv(1 << 16):
            pass

    return handler


class TlsServer(TcpServer):
    """TlsServer is an OpenSSL server (Python's ssl module) that requires a
    client certificate signed by `client_ca` (SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
    which nginx does not set: nginx checks the client certificate after the
    handshake). After the handshake it runs session(tls socket), which by
    default echoes and records what came in `requests`; silent_handler or
    reset_after_head_handler(...) fit as well. `handshake_errors` collects
    what the server saw go wrong."""

    def __init__(self, cert, key, client_ca, versions=("TLSv1.2", "TLSv1.3"), session=None):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.load_verify_locations(client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.minimum_version = getattr(ssl.TLSVersion, versions[0].replace(".", "_"))
        self.context.maximum_version = getattr(ssl.TLSVersion, versions[-1].replace(".", "_"))
        self.handshake_errors = []
        self.requests = []
        self.session = session or self._echo
        super().__init__(self._handle)

    def _handle(self, conn):
        conn.settimeout(10)
        tls = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as e:
            self.handshake_errors.append(repr(e))
            # Close politely: half-close and drain what the client sent, so
            # that the alert already sent is not lost to a TCP reset.
            try:
                tls.shutdown(socket.SHUT_WR)
                tls.settimeout(2)
                while tls.recv(1 << 16):
                    pass
            except OSError:
                pass
            tls.close()
            return
        try:
            self.session(tls)
        except (ssl.SSLError, OSError) as e:
            self.handshake_errors.append(repr(e))
        finally:
            tls.close()

    def _echo(self, tls):
        while True:
            data = tls.recv(1 << 16)
            if not data:
                break
            self.requests.append(data)
            tls.sendall(data)


def _read_head(conn):
    """_read_head reads from `conn` (10 s timeout) up to the blank line that
    ends a request head; returns (the head as text, the bytes read after
    it), or None when the peer closed first."""
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(1 << 16)
        if not more:
            return None
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def reset_after_head_handler(heads):
    """reset_after_head_handler returns a handler that reads one request
    head (up to the blank line), appends it to the list `heads`, and resets
    the connection (SO_LINGER 0: RST, no close_notify, no answer)."""

    def handler(conn):
        read = _read_head(conn)
        if read is None:
            return
        heads.append(read[0])
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    return handler


def upgrade_echo_handler(heads):
    """upgrade_echo_handler returns a handler that reads one request head,
    appends it to `heads`, answers 101 Switching Protocols (a WebSocket
    handshake, without the WebSocket framing), says "upgraded\n", and then
    echoes every byte until the peer closes."""

    def handler(conn):
        read = _read_head(conn)
        if read is None:
            return
        head, rest = read
        heads.append(head)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\nupgraded\n" + rest)
        while True:
            more = conn.recv(1 << 16)
            if not more:
                return
            conn.sendall(more)

    return handler


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    """What HttpsServer answers; `server` is the _HttpConnection."""

    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, format, *args):
        pass

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    raise ConnectionAbortedError("the connection ended inside a chunked body")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self):
        body = self._read_body()
        self.server.owner.record({
            "method": self.command, "path": self.path, "headers": list(self.headers.items()),
            "chunked": "chunked" in self.headers.get("Transfer-Encoding", "").lower(),
            "body_length": len(body), "connection": self.server.number})
        if self.path.startswith("/echo"):
            out = body
        elif self.path.startswith("/sha256"):
            out = hashlib.sha256(body).hexdigest().encode() + b"\n"
        else:
            out = f"{self.command} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = _answer


class _HttpConnection:
    def __init__(self, owner, number):
        self.owner = owner
        self.number = number


class HttpsServer(TlsServer):
    """HttpsServer is an HTTP/1.1 keep-alive server on TlsServer's TLS
    (client certificate required). Every path answers 200: /echo... with the
    request body, /sha256... with its hex SHA-256 and a newline, anything
    else with "METHOD PATH\n". It reads Content-Length and chunked bodies,
    and answers "Expect: 100-continue" with 100 before reading the body.
    `requests` holds each request as a dict: method, path, headers (a list
    of (name, value) as sent), chunked, body_length, connection (a number
    per TLS connection)."""

    def __init__(self, cert, key, client_ca):
        self._numbers = itertools.count(1)
        self._record_lock = threading.Lock()
        super().__init__(cert, key, client_ca, session=self._serve)

    def _serve(self, tls):
        _HttpHandler(tls, ("127.0.0.1", 0), _HttpConnection(self, next(self._numbers)))

    def record(self, request):
        with self._record_lock:
            self.requests.append(request)


# ---- nginx ------------------------------------------------------------------

_ACCESS_LOG_FORMAT = (
    "log_format tls escape=json '{"
    '"request":"$request","status":"$status","bytes":"$body_bytes_sent",'
    '"protocol":"$ssl_protocol","reused":"$ssl_session_reused",'
    '"client_serial":"$ssl_client_serial","server_name":"$ssl_server_name",'
    '"client_dn":"$ssl_client_s_dn","client_verify":"$ssl_client_verify",'
    '"connection":"$connection","connection_requests":"$connection_requests",'
    '"request_length":"$request_length","host":"$http_host",'
    '"forwarded_for":"$http_x_forwarded_for","forwarded_proto":"$http_x_forwarded_proto"'
    "}';"
)

_STREAM_LOG_FORMAT = (
    "log_format tls escape=json '{"
    '"status":"$status","protocol":"$ssl_protocol","reused":"$ssl_session_reused",'
    '"client_serial":"$ssl_client_serial","server_name":"$ssl_server_name",'
    '"bytes_received":"$bytes_received","bytes_sent":"$bytes_sent"'
    "}';"
)


class Nginx:
    """Nginx runs /usr/sbin/nginx from a private prefix (config, logs, pid,
    temp paths and document root all inside it) in the foreground with one
    process (`master_process off`, so it keeps running as the current user
    and reads files under the private temp folder). Build with one of the
    class methods, then start(); stop() or the test's cleanup ends it."""

    def __init__(self, prefix, port, body, main_extra="", mode="https"):
        self.mode = mode
        self.prefix = prefix
        self.port = port
        os.makedirs(prefix, exist_ok=True)
        self.www = os.path.join(prefix, "www")
        os.makedirs(self.www, exist_ok=True)
        self.access_log = os.path.join(prefix, "access.log")
        self.error_log = os.path.join(prefix, "error.log")
        self.conf_path = os.path.join(prefix, "nginx.conf")
        self.conf = (f"{main_extra}"
                     f"error_log {self.error_log} info;\n"
                     f"pid {prefix}/nginx.pid;\n"
                     # Running as root (also inside Bazel's sandbox, where
                     # chown to nobody fails), nginx would hand its temp
                     # folders to `nobody`; keep everything root's.
                     f"user root;\n"
                     f"worker_processes 1;\n"
                     f"events {{ worker_connections 1024; }}\n"
                     f"{body}")
        self.process = None

    @staticmethod
    def _tls(pki_server, client_ca, verify_client, protocols, resumption=True):
        lines = [
            f"ssl_certificate {pki_server.crt};",
            f"ssl_certificate_key {pki_server.key};",
            f"ssl_protocols {' '.join(protocols)};",
            "ssl_session_timeout 5m;",
            f"ssl_session_tickets {'on' if resumption else 'off'};",
        ]
        if client_ca:
            lines.append(f"ssl_client_certificate {client_ca};")
            lines.append(f"ssl_verify_client {verify_client};")
        return "\n        ".join(lines)

    @classmethod
    def https(cls, prefix, server, client_ca, port=None, verify_client="on",
              protocols=("TLSv1.2", "TLSv1.3"), require_sni=False, keepalive_requests=1000,
              plaintext=False, session_resumption=True):
        """https serves files from `www` over TLS, asking for a client
        certificate signed by client_ca (None: not asking). With
        require_sni, the default server rejects handshakes without the
        name upstream.test (ssl_reject_handshake on: alert 112). A
        keep-alive connection carries at most keepalive_requests requests
        (the last answer says Connection: close). With plaintext, the same
        server speaks plain HTTP (the mistake of pointing TLS at it). With
        session_resumption=False, no ticket and no session cache: every
        handshake is a full one, verified against the client's trust as it
        is now."""
        port = port or free_port()
        tls = "" if plaintext else cls._tls(server, client_ca, verify_client, protocols,
                                            session_resumption)
        listen = f"listen 127.0.0.1:{port}{'' if plaintext else ' ssl'}"
        servers = ""
        if require_sni:
            servers += (f"    server {{\n        {listen} default_server;\n"
                        f"        ssl_reject_handshake on;\n    }}\n")
            name = f"server_name {SERVER_NAME};"
        else:
            name = ""
        servers += (f"    server {{\n        {listen};\n        {name}\n        {tls}\n"
                    f"        access_log {prefix}/access.log tls;\n"
                    f"        root {prefix}/www;\n"
                    f"        location / {{ }}\n    }}\n")
        body = (
            "http {\n"
            f"    client_body_temp_path {prefix}/client_body;\n"
            f"    proxy_temp_path {prefix}/proxy;\n"
            f"    fastcgi_temp_path {prefix}/fastcgi;\n"
            f"    uwsgi_temp_path {prefix}/uwsgi;\n"
            f"    scgi_temp_path {prefix}/scgi;\n"
            "    access_log off;  # servers that log say where\n"
            "    default_type application/octet-stream;\n"
            "    sendfile off;\n"
            "    keepalive_timeout 60s;\n"
            f"    keepalive_requests {keepalive_requests};\n"
            f"    ssl_session_cache {'shared:S:1m' if session_resumption else 'off'};\n"
            f"    {_ACCESS_LOG_FORMAT}\n"
            f"{servers}"
            "}\n")
        return cls(prefix, port, body)

    @classmethod
    def stream(cls, prefix, server, client_ca, backend_port, port=None, half_close=True,
               protocols=("TLSv1.2", "TLSv1.3")):
        """stream terminates TLS (client certificate required) and relays
        to 127.0.0.1:backend_port (proxy_half_close on by default)."""
        port = port or free_port()
        tls = cls._tls(server, client_ca, "on", protocols)
        body = (
            "stream {\n"
            f"    {_STREAM_LOG_FORMAT}\n"
            "    ssl_session_cache shared:SS:1m;\n"
            "    server {\n"
            f"        listen 127.0.0.1:{port} ssl;\n"
            f"        {tls}\n"
            f"        proxy_pass 127.0.0.1:{backend_port};\n"
            f"        proxy_half_close {'on' if half_close else 'off'};\n"
            "        proxy_timeout 30s;\n"
            f"        access_log {prefix}/access.log tls;\n"
            "    }\n"
            "}\n")
        return cls(prefix, port, body, main_extra=f"load_module {NGINX_STREAM_MODULE};\n",
                   mode="stream")

    def add_file(self, name, data):
        """add_file serves `data` at /name (`name` may hold folders)."""
        path = os.path.join(self.www, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(path, data)
        return path

    def start(self, timeout=DEFAULT_TIMEOUT):
        write_file(self.conf_path, self.conf)
        argv = [NGINX_BIN, "-p", self.prefix + "/", "-c", self.conf_path, "-g",
                "daemon off; master_process off;"]
        self.process = Process(argv, os.path.join(self.prefix, "nginx.out"))
        try:
            wait_port(self.port, timeout, self.process.popen, "nginx")
        except AssertionError as e:
            raise AssertionError(f"{e}\nnginx output:\n{self.process.log()}\n"
                                 f"error.log:\n{read_text(self.error_log)}\n"
                                 f"config:\n{self.conf}") from None
        return self

    def stop(self):
        if self.process is not None:
            self.process.signal(signal.SIGQUIT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.process.kill()

    def access_entries(self, all_entries=False):
        """access_entries returns the access log's lines as dicts. Stream
        mode also logs connections that never finished a TLS handshake
        (start()'s own port probe among them, logged with status 500 and
        no client certificate): those are left out unless
        all_entries is set."""
        entries = []
        for line in read_text(self.access_log).splitlines():
            line = line.strip()
            if line:
                entry = json.loads(line)
                if all_entries or self.mode != "stream" or entry.get("client_serial"):
                    entries.append(entry)
        return entries

    def wait_access_entries(self, count, timeout=DEFAULT_TIMEOUT):
        """wait_access_entries waits until the access log has at least
        `count` lines (nginx writes a line when a request ends) and returns
        them all."""
        return wait_until(lambda: len(self.access_entries()) >= count and self.access_entries(),
                          timeout, what=f"{count} nginx access log lines in {self.access_log}")

    def error_text(self):
        return read_text(self.error_log)
