"""An upstream the sidecar must not trust, or that does not accept the
sidecar, gets no request: the client's connection closes without data, the
upstream logs nothing, and the sidecar logs one line that says why."""

import re
import unittest

from tests.lib import harness
from tests.lib.harness import SERVER_NAME, cluster_tls

REQUEST = b"GET /hello.txt HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n"
ALERT = re.compile(r"alert [a-z_]+ \(\d+\)")


class UpstreamRejectedTest(harness.IntegrationTest):

    def start_refusing_sidecar(self, upstream_port, tls=None, name="sidecar"):
        # One attempt per client connection: one handshake, one log line.
        return self.simple_sidecar(upstream_port, tls or cluster_tls(self.pki), name=name,
                                   cluster_extra={"max_connect_attempts": 1})

    def assert_refused(self, sidecar, upstream_port, reason, sni=SERVER_NAME, alert=True):
        """Sends a request through the sidecar and checks that it was
        refused for `reason`; returns the log line."""
        sock = self.connect(sidecar.listener_port())
        sock.sendall(REQUEST)
        self.assertTrue(harness.is_closed_without_data(sock, timeout=10),
                        "the client received data from a refused upstream")
        pattern = (rf"handshake failed: cluster=c endpoint=127\.0\.0\.1:{upstream_port} "
                   rf"sni={re.escape(sni)} reason={reason}\b")
        lines = sidecar.wait_log(pattern)
        # No second attempt and no second line for the same failure: the
        # client's connection closes only after the sidecar gave up on every
        # attempt, and each attempt's line is written before that.
        self.assertEqual(len(sidecar.log_lines("handshake failed")), 1, sidecar.log())
        if alert:
            self.assertRegex(lines[0], ALERT)
        self.assertTrue(sidecar.is_running())
        return lines[0]

    def assert_nginx_saw_no_request(self, nginx):
        self.assertEqual(nginx.access_entries(all_entries=True), [])

    def test_certificate_from_another_ca(self):
        nginx = self.start_https(server=self.pki.other_server)
        sidecar = self.start_refusing_sidecar(nginx.port)
        self.assert_refused(sidecar, nginx.port, "unknown_ca")
        self.assert_nginx_saw_no_request(nginx)

    def test_certificate_for_another_name(self):
        nginx = self.start_https(server=self.pki.wrong_name)
        sidecar = self.start_refusing_sidecar(nginx.port)
        self.assert_refused(sidecar, nginx.port, "name_mismatch")
        self.assert_nginx_saw_no_request(nginx)

    def test_certificate_for_another_ip(self):
        # No server_name: no SNI, and the IP SAN must match the endpoint.
        nginx = self.start_https(server=self.pki.wrong_name)
        sidecar = self.start_refusing_sidecar(nginx.port, cluster_tls(self.pki, server_name=None))
        self.assert_refused(sidecar, nginx.port, "name_mismatch", sni="none")
        self.assert_nginx_saw_no_request(nginx)

    def test_subject_alt_names_not_matched(self):
        nginx = self.start_https()
        tls = cluster_tls(self.pki, match_subject_alt_names=["URI:spiffe://test/someone-else"])
        sidecar = self.start_refusing_sidecar(nginx.port, tls)
        self.assert_refused(sidecar, nginx.port, "name_mismatch")
        self.assert_nginx_saw_no_request(nginx)

    def test_subject_alt_names_matched(self):
        # The positive twin of the test above: the same check lets the
        # right upstream through.
        nginx = self.start_https()
        tls = cluster_tls(self.pki, match_subject_alt_names=["URI:spiffe://test/nobody",
                                                             f"DNS:{SERVER_NAME}"])
        sidecar = self.start_refusing_sidecar(nginx.port, tls)
        self.assertEqual(harness.http_get(sidecar.listener_port(), "/hello.txt")[0], 200)

    def test_near_miss_subject_alt_names_are_refused(self):
        # match_subject_alt_names compares names exactly, and each in its own
        # type: a name that differs by a prefix, a suffix, a path segment,
        # case (URI) or SAN type is refused as name_mismatch. The exact name,
        # and what DNS itself allows (case, a one-label wildcard), pass.
        uri_rule, dns_rule = "URI:spiffe://shop/orders", "DNS:orders.shop.svc"
        cases = [
            # (rule, certificate SANs, accepted)
            (uri_rule, {"uris": ["spiffe://shop/orders"]}, True),
            (uri_rule, {"uris": ["spiffe://shop/orders-evil"]}, False),
            (uri_rule, {"uris": ["spiffe://shop/orders/evil"]}, False),
            (uri_rule, {"uris": ["spiffe://shop/order"]}, False),
            (uri_rule, {"uris": ["xspiffe://shop/orders"]}, False),
            (uri_rule, {"uris": ["SPIFFE://shop/orders"]}, False),
            (uri_rule, {"uris": ["spiffe://SHOP/orders"]}, False),
            (uri_rule, {"dns": ["spiffe://shop/orders"]}, False),
            (dns_rule, {"dns": ["orders.shop.svc"]}, True),
            (dns_rule, {"dns": ["ORDERS.Shop.SVC"]}, True),
            (dns_rule, {"dns": ["*.shop.svc"]}, True),
            (dns_rule, {"dns": ["orders.shop.svc.evil"]}, False),
            (dns_rule, {"dns": ["evilorders.shop.svc"]}, False),
            (dns_rule, {"dns": ["rders.shop.svc"]}, False),
            (dns_rule, {"dns": ["orders.shop"]}, False),
            (dns_rule, {"dns": ["*.orders.shop.svc"]}, False),
            (dns_rule, {"dns": ["o*.shop.svc"]}, False),
            (dns_rule, {"dns": ["*.svc"]}, False),
            (dns_rule, {"uris": ["orders.shop.svc"]}, False),
            (dns_rule, {"uris": ["dns://orders.shop.svc"]}, False),
        ]
        for i, (rule, sans, accepted) in enumerate(cases):
            with self.subTest(rule=rule, certificate=sans):
                pair = self.pki.issue(f"near-miss-{i}", cn="near-miss", server=True, **sans)
                server = self.start_tls_server(cert=pair.crt, key=pair.key,
                                               client_ca=self.pki.ca_crt)
                sidecar = self.start_refusing_sidecar(
                    server.port, cluster_tls(self.pki, match_subject_alt_names=[rule]),
                    name=f"sidecar-{i}")
                if accepted:
                    sock = self.connect(sidecar.listener_port())
                    sock.sendall(b"ping")
                    self.assertEqual(harness.recv_exactly(sock, 4), b"ping", sidecar.log())
                else:
                    self.assert_refused(sidecar, server.port, "name_mismatch")
                    self.assertEqual(server.requests, [])
                sidecar.finish()

    def test_expired_certificate(self):
        nginx = self.start_https(server=self.pki.expired)
        sidecar = self.start_refusing_sidecar(nginx.port)
        self.assert_refused(sidecar, nginx.port, "certificate_expired")
        self.assert_nginx_saw_no_request(nginx)

    def test_no_common_protocol_version(self):
        nginx = self.start_https(protocols=["TLSv1.3"])
        sidecar = self.start_refusing_sidecar(nginx.port,
                                              cluster_tls(self.pki, protocols=["TLSv1.2"]))
        self.assert_refused(sidecar, nginx.port, "protocol_version")
        self.assert_nginx_saw_no_request(nginx)

    def test_client_certificate_required_but_not_configured(self):
        # nginx only checks client certificates after the handshake (and
        # answers 400), so the upstream here is an OpenSSL server that
        # refuses the handshake itself, as Envoy or Go servers do.
        tls = cluster_tls(self.pki, certificate=None, private_key=None)
        for version in ("TLSv1.2", "TLSv1.3"):
            with self.subTest(version=version):
                server = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                               client_ca=self.pki.ca_crt, versions=[version])
                sidecar = self.start_refusing_sidecar(server.port, tls, name=f"sidecar-{version}")
                line = self.assert_refused(sidecar, server.port, "client_certificate_rejected")
                self.assertIn("hint: the upstream requires a client certificate; set certificate "
                              "and private_key", line)
                self.assertEqual(server.requests, [])
                sidecar.finish()

    def test_client_certificate_from_a_ca_the_upstream_does_not_trust(self):
        # A received unknown_ca alert means the upstream refused us: that is
        # client_certificate_rejected, not the sidecar's own unknown_ca.
        stranger = self.pki.issue("stranger-client", ca_dir=self.pki.other_ca_dir, cn="client",
                                  uris=[harness.CLIENT_URI], client=True)
        tls = cluster_tls(self.pki, certificate=stranger.crt, private_key=stranger.key)
        for version in ("TLSv1.2", "TLSv1.3"):
            with self.subTest(version=version):
                server = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                               client_ca=self.pki.ca_crt, versions=[version])
                sidecar = self.start_refusing_sidecar(server.port, tls, name=f"sidecar-{version}")
                line = self.assert_refused(sidecar, server.port, "client_certificate_rejected")
                # In TLS 1.3 the refusal comes after our side of the handshake,
                # when the SSL's own configuration is gone: the hint still knows
                # that a certificate was sent.
                self.assertIn("hint: the upstream does not trust the CA that issued our client "
                              "certificate", line)
                self.assertEqual(server.requests, [])
                sidecar.finish()

    def test_upstream_closing_during_the_handshake(self):
        def close_at_once(conn):
            conn.recv(1)  # the ClientHello has started to arrive

        server = self.start_tcp_server(close_at_once)
        sidecar = self.start_refusing_sidecar(server.port)
        self.assert_refused(sidecar, server.port, "connection_closed", alert=False)

    def test_plaintext_http_upstream(self):
        # The most common first mistake: a cluster pointed at a plain HTTP
        # port. nginx answers the ClientHello with "400 Bad Request".
        nginx = self.start_https(plaintext=True)
        sidecar = self.start_refusing_sidecar(nginx.port)
        line = self.assert_refused(sidecar, nginx.port, "not_tls")
        self.assertIn('hint: the upstream answered with something that is not TLS (it looks '
                      'like HTTP: "HTTP/1.1 400"); is the port a plaintext one?', line)
        self.assertNotIn("no TLS version or cipher in common", line)
        self.assertEqual(sidecar.stat("ssl.handshake_failure.not_tls"), 1)
        prometheus = sidecar.admin_get("/stats/prometheus")[1]
        self.assertRegex(prometheus, r'ssl_handshake_failure\{reason="not_tls"\} 1\b')

    def test_echo_upstream(self):
        # A plain TCP service that sends back what it gets: our ClientHello.
        echo = self.start_echo()
        sidecar = self.start_refusing_sidecar(echo.port)
        line = self.assert_refused(sidecar, echo.port, "not_tls")
        self.assertIn("the upstream sent our own ClientHello back", line)

    def test_refused_upstream_is_counted(self):
        nginx = self.start_https(server=self.pki.other_server)
        sidecar = self.start_refusing_sidecar(nginx.port)
        self.assert_refused(sidecar, nginx.port, "unknown_ca")
        host = sidecar.hosts("c")[0]
        self.assertGreaterEqual(harness.host_stat(host, "ssl_handshake_failures"), 1)
        self.assertTrue(host.get("last_error"), host)


if __name__ == "__main__":
    unittest.main()
