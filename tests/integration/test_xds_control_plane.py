"""The sidecar under the reference control plane, end to end: xds-server
(//xds-server:xds-server) gives it a cluster, its endpoints, a listener and, as the
workload CA, a short-lived client certificate over ADS; nginx upstream
requires a client certificate from that CA. Under continuous load (every
request checked, a large answer held in flight across the changes):

* the certificate rotates again and again: no connection fails, connections
  opened before keep their first certificate, every new certificate reaches
  the upstream;
* the control plane is killed and comes back: traffic does not notice, the
  sidecar reconnects and the versions resume;
* the sidecar restarts while the control plane is down: it serves the
  configuration it saved, then goes back to live configuration;
* an edit of a resource file reaches the sidecar on the stream it has open
  (the time it took is reported);
* one version per resource set: xds-server's log, its /status, and what
  the sidecar ACKs and shows;
* a file with an HTTP listener (an HttpConnectionManager with inline
  routes) makes an HTTP listener whose requests reach the cluster their
  path names.
"""

import base64
import datetime
import json
import os
import re
import shutil
import socket
import ssl
import sys
import time
import unittest

from tests.lib import harness
from tests.lib.control_plane import (XDS_SERVER_NAME, XdsServer, backend_resources, eds_cluster,
                                     http_listener, load_assignment, tcp_listener,
                                     versions_by_type, wait_serving, write_resources,
                                     xds_bootstrap, xds_server_certificates, xds_status)
from tests.lib.harness import KeptConnections, SERVER_NAME, http_get, normalize_serial
from tests.lib.load import LARGE_BODY, LARGE_BODY_RATE, HeldRequest, RequestLoad
from tests.lib.pki import (CertPair, find_key_material, key_material, key_material_of_file,
                           key_pems_in)

NODE_ID = "orders.shop"
NODE_SPIFFE_ID = "spiffe://cluster.local/ns/shop/sa/orders"
# The bootstrap certificate proves the node's identity.
BOOTSTRAP_URI = NODE_SPIFFE_ID
HELLO = b"hello from nginx\n"
INITIAL_FETCH_TIMEOUT_MS = 5000
# How long after a rotation's log line a new connection must present the new
# certificate: the workers take the snapshot up within one turn of their loop.
STALE_AFTER_S = 1.5

# The request's tag in nginx's access log: "GET /hello.txt?load=2-17 HTTP/1.1".
MARKER = re.compile(r"\?((?:load|kept|probe)=[\w-]+)")
# "2026-11-23T14:30:21.089Z info tls reloaded: cluster=backend generation=2 serial=ee0e..."
TLS_LOAD_LINE = re.compile(r"^(\S+)Z \w+ tls (?:re)?loaded: cluster=backend generation=(\d+) "
                           r"serial=([0-9a-f]+)")


def log_time(stamp):
    """log_time turns the sidecar's UTC log stamp into time.time() seconds."""
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()


def tls_loads(sidecar):
    """tls_loads returns [(time, generation, serial)] of the cluster
    backend's `tls loaded` and `tls reloaded` lines, in log order."""
    loads = []
    for line in sidecar.log().splitlines():
        match = TLS_LOAD_LINE.search(line)
        if match:
            loads.append((log_time(match.group(1)), int(match.group(2)),
                          normalize_serial(match.group(3))))
    return loads


def tls_reloaded_pattern(serial):
    """tls_reloaded_pattern matches the sidecar's `tls reloaded` line for a
    normalized serial (the log keeps the leading zeros it drops)."""
    return rf"tls reloaded: cluster=backend generation=\d+ serial=0*{serial} "


def serials_by_marker(nginx):
    """serials_by_marker maps each tagged request nginx logged to
    (client serial, nginx connection number)."""
    found = {}
    for entry in nginx.access_entries():
        match = MARKER.search(entry["request"])
        if match:
            found[match.group(1)] = (normalize_serial(entry["client_serial"]),
                                     entry["connection"])
    return found


def backup_key_pems(path):
    """backup_key_pems returns the private key PEMs inside the resources
    (protobuf bytes, base64 in JSON) of the sidecar's xDS backup file."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            try:
                found.extend(key_pems_in(base64.b64decode(value, validate=True)))
            except ValueError:
                pass

    with open(path) as f:
        walk(json.load(f))
    return found


def first_certificate_der(path):
    """first_certificate_der returns the DER of the first certificate in a
    PEM file."""
    with open(path) as f:
        match = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", f.read(),
                          re.DOTALL)
    return ssl.PEM_cert_to_DER_cert(match.group(0))


def served_certificate_der(port, bootstrap, trusted_ca):
    """served_certificate_der opens a new TLS connection to xds-server's ADS
    port, as a sidecar does (its bootstrap certificate, h2), and returns the
    DER of the certificate the server presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(trusted_ca)
    context.load_cert_chain(bootstrap.crt, bootstrap.key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=XDS_SERVER_NAME) as tls:
            return tls.getpeercert(binary_form=True)


class SecretVolume:
    """SecretVolume is a folder laid out as kubelet lays out a Secret
    volume: tls.crt and tls.key are symlinks through `..data`, a symlink to
    the folder of the current version, and an update swaps `..data` in one
    rename (what cert-manager's renewal looks like to the pod)."""

    def __init__(self, folder):
        self.folder = folder
        self.version = 0
        os.makedirs(folder, exist_ok=True)

    def put(self, files):
        """put makes a new version holding `files` ({name: source path or
        bytes}) and swaps it in."""
        self.version += 1
        version_dir = f"..v{self.version}"
        os.mkdir(os.path.join(self.folder, version_dir))
        for name, source in files.items():
            target = os.path.join(self.folder, version_dir, name)
            if isinstance(source, bytes):
                with open(target, "wb") as f:
                    f.write(source)
            else:
                shutil.copyfile(source, target)
            link = os.path.join(self.folder, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)
        tmp = os.path.join(self.folder, "..data_tmp")
        os.symlink(version_dir, tmp)
        os.replace(tmp, os.path.join(self.folder, "..data"))

    def pair(self):
        return CertPair(os.path.join(self.folder, "tls.crt"), os.path.join(self.folder, "tls.key"))


def report(what):
    """report prints a measured number to the test log."""
    print(f"[measured] {what}", file=sys.stderr, flush=True)


# ---- the tests ----------------------------------------------------------------------


class XdsControlPlaneTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The workload CA is the Pki's CA: it signs the control plane's own
        # certificate, nginx's certificate, and every certificate xds-server
        # issues. Bootstrap certificates come from a CA of their own.
        cls.xds_tls, cls.bootstrap_ca_dir, cls.bootstrap = xds_server_certificates(
            cls.pki, BOOTSTRAP_URI)

    def setUp(self):
        super().setUp()
        self._control_planes = []
        # Cleanups run last-in first-out: these run after the test's
        # processes have stopped, before the harness's own checks.
        self.addCleanup(self._dump_control_plane_logs_on_failure)
        self.addCleanup(self._check_control_plane_sanitizers)

    def _check_control_plane_sanitizers(self):
        reports = [line for c in self._control_planes for line in c.sanitizer_reports()]
        if reports:
            self.fail("xds-server's sanitizers reported:\n" + "\n".join(reports))

    def _dump_control_plane_logs_on_failure(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        if result is not None:
            failed = failed or any(test is self for test, _ in
                                   list(result.failures) + list(result.errors))
        if failed or os.environ.get("SHOW_SIDECAR_LOGS"):
            for c in self._control_planes:
                print(f"\n---- xds-server logs ----\n{c.all_logs()[-20000:]}")

    # the mesh: nginx upstream(s), xds-server, sidecar

    def write_backend(self, upstream_ports):
        """write_backend (re)writes the resource file: cluster `backend`
        over EDS and SDS, its endpoints, listener `backend-in`."""
        write_resources(self.resource_file, backend_resources(upstream_ports, self.listener_port))

    def start_control_plane(self, upstream_ports, cert_ttl="1h", start=True, tls=None):
        """start_control_plane starts xds-server serving the backend
        resources (with start=False, only chooses its ports: nothing listens
        there until control_plane.start()); returns it and the sidecar's
        `xds` section for it."""
        config_dir = self.tmp.mkdir("resources")
        self.resource_file = os.path.join(config_dir, "backend.json")
        self.listener_port = harness.free_port()
        self.write_backend(upstream_ports)
        control_plane = XdsServer(self.tmp.mkdir("xds-server"), tls or self.xds_tls,
                                  self.pki.ca_dir, config_dir, cert_ttl=cert_ttl,
                                  client_ca=os.path.join(self.bootstrap_ca_dir, "ca.crt"),
                                  args=["--serve-workload-keys"])
        self.addCleanup(control_plane.finish)
        self._control_planes.append(control_plane)
        if start:
            control_plane.start()
        return control_plane, xds_bootstrap(control_plane.port, self.bootstrap, self.pki.ca_crt,
                                            NODE_ID, "orders",
                                            initial_fetch_timeout_ms=INITIAL_FETCH_TIMEOUT_MS)

    def start_mesh(self, upstream_ports, cert_ttl="1h", **xds_extra):
        """start_mesh starts xds-server serving the backend resources and a
        sidecar that takes everything from it; returns (control plane,
        sidecar) once the sidecar is ready and the server sees every type
        ACKed."""
        control_plane, xds = self.start_control_plane(upstream_ports, cert_ttl)
        xds.update(xds_extra)
        sidecar = self.start_sidecar(harness.config([], [], xds=xds))
        node = wait_serving(control_plane, NODE_ID)
        self.assertEqual(node["spiffe_id"], NODE_SPIFFE_ID)
        self.assertEqual(node["bootstrap_spiffe_id"], BOOTSTRAP_URI)
        return control_plane, sidecar

    def xds(self, sidecar):
        """xds returns the sidecar's XdsStatus from /config_dump."""
        return xds_status(sidecar.admin_json("/config_dump"))

    def issued_serial(self, control_plane):
        return normalize_serial(control_plane.node(NODE_ID)["certificate"]["serial_number"])

    def probe(self, nginx, name):
        """probe makes one tagged request through the sidecar and returns
        the client serial nginx saw for it."""
        self.assertEqual(http_get(self.listener_port, f"/hello.txt?probe={name}"), (200, HELLO))
        key = f"probe={name}"
        return harness.wait_until(lambda: serials_by_marker(nginx).get(key),
                                  what=f"nginx to log {key}")[0]

    # 1

    def test_certificate_rotates_ten_times_under_load(self):
        nginx = self.start_https(files={"hello.txt": HELLO, "big.bin": LARGE_BODY})
        control_plane, sidecar = self.start_mesh([nginx.port], cert_ttl="4s")
        _, first_generation, first_serial = tls_loads(sidecar)[0]
        self.assertEqual(first_serial, self.issued_serial(control_plane))

        # Long-lived connections, opened on the first certificate, and a
        # large answer held in flight across all ten rotations.
        kept = KeptConnections(self.listener_port, count=3)
        self.addCleanup(kept.close)
        held = HeldRequest(self.listener_port, "/big.bin", LARGE_BODY)
        self.addCleanup(held.release)
        held.wait_held()
        self.assertEqual(sidecar.log_lines("tls reloaded"), [],
                         "the first rotation came before the kept connections were open: "
                         "the test needs a longer --cert-ttl")
        load = RequestLoad(self.listener_port, threads=3)
        self.addCleanup(load.stop)
        # Large answers on new connections, half a second each: some are in
        # flight at every rotation.
        big = RequestLoad(self.listener_port, threads=2, path="/big.bin", expected=LARGE_BODY,
                          tag="big", bytes_per_second=LARGE_BODY_RATE)
        self.addCleanup(big.stop)

        # Ten rotations at 50-70% of 4 s: 20-28 s.
        harness.wait_until(lambda: sidecar.stat("tls_reload_success") >= 10 or load.failures or
                           kept.failures or big.failures, timeout=60, interval=0.5,
                           what="10 certificate rotations")
        self.assertEqual(load.failures, [])
        self.assertEqual(kept.failures, [])
        self.assertEqual(big.failures, [])

        # /certs: the first context lives on for the kept connections and the
        # held answer only;
        # the current one serves new connections; the ones in between are
        # gone (at most one more, held by connections still under way).
        certificates = sidecar.admin_json("/certs")["certificates"]
        by_generation = {c["generation"]: c for c in certificates}
        self.assertIn(first_generation, by_generation, certificates)
        self.assertFalse(by_generation[first_generation]["current"])
        # (the three kept connections and the held answer).
        self.assertEqual(by_generation[first_generation]["active_connections"], 4)
        current = [c for c in certificates if c["current"]]
        self.assertEqual(len(current), 1, certificates)
        self.assertEqual(current[0]["generation"], max(by_generation), certificates)
        self.assertGreaterEqual(current[0]["generation"], first_generation + 10)
        self.assertLessEqual(len(certificates), 3, certificates)

        # Let every certificate logged so far serve for a while, then stop.
        loads = tls_loads(sidecar)
        load.wait_more(30)
        big.wait_more(2)
        self.assertEqual(held.finish(), None, "the answer held across the rotations")
        load.stop()
        big.stop()
        kept.stop()
        self.assertEqual(load.failures, [])
        self.assertEqual(big.failures, [])
        self.assertEqual(kept.failures, [])
        # The held answer came whole, on the first certificate; large answers
        # on new connections were in flight across rotations.
        held_entry = harness.wait_until(
            lambda: [e for e in nginx.access_entries() if held.marker in e["request"]],
            what="nginx to log the held answer")[0]
        self.assertEqual((normalize_serial(held_entry["client_serial"]), held_entry["bytes"]),
                         (first_serial, str(len(LARGE_BODY))))
        wall = time.time() - time.monotonic()
        spanning = [marker for marker, began, ended in big.spans
                    if any(began + wall < t < ended + wall for t, _, _ in loads[1:])]
        self.assertTrue(spanning, f"no large answer was in flight at a rotation: {big.spans}")
        self.assertGreaterEqual(sidecar.stat("tls_reload_success"), 10)

        seen = serials_by_marker(nginx)
        generation_of = {serial: generation for _, generation, serial in tls_loads(sidecar)}
        load_serials = {serial for marker, (serial, _) in seen.items()
                        if marker.startswith("load=")}
        # Every certificate the sidecar took reached the upstream, and the
        # upstream saw no other.
        self.assertGreaterEqual(len(load_serials), 11)
        self.assertEqual({serial for _, _, serial in loads} - load_serials, set())
        self.assertEqual(load_serials - set(generation_of), set())
        # A connection opened well after a rotation presents the new
        # certificate (a resumed old session would present the old one, and
        # would go on doing so). "Well after": STALE_AFTER_S gives the
        # workers time to take up the new snapshot on a busy machine; the
        # rotations come every 2-2.8 s, so many connections are still
        # checked, and they must be.
        stale, checked = [], 0
        for marker, (serial, _) in seen.items():
            if not marker.startswith("load="):
                continue
            began = load.started[marker]
            in_force = max((g for t, g, _ in loads if t <= began - STALE_AFTER_S), default=0)
            checked += in_force > first_generation
            if generation_of[serial] < in_force:
                stale.append((marker, generation_of[serial], in_force))
        self.assertEqual(stale, [], "connections presented a certificate already replaced")
        self.assertGreaterEqual(checked, 20, "too few connections opened well after a rotation")

        # The kept connections never reconnected and kept the first certificate.
        for k in range(3):
            entries = [v for m, v in seen.items() if m.startswith(f"kept={k}-")]
            self.assertGreater(len(entries), 50)
            self.assertEqual({serial for serial, _ in entries}, {first_serial})
            self.assertEqual(len({connection for _, connection in entries}), 1, entries)

        # The control plane and the sidecar agree on the certificate in force.
        node = control_plane.node(NODE_ID)
        self.assertGreaterEqual(node["certificate"]["issued_count"], 11)
        self.assertEqual(normalize_serial(node["certificate"]["serial_number"]),
                         tls_loads(sidecar)[-1][2])

        # Once the kept connections close, the first context is freed too.
        kept.close()
        harness.wait_until(lambda: len(sidecar.admin_json("/certs")["certificates"]) == 1,
                           what="/certs to hold only the current context")
        report(f"rotation: {sidecar.stat('tls_reload_success')} rotations, "
               f"{len(load_serials)} serials at nginx, {load.successes} new connections, "
               f"{big.successes} large answers ({len(spanning)} in flight at a rotation) "
               f"and {kept.requests} requests on 3 kept connections, "
               f"{len(load.failures) + len(kept.failures)} failures")

    # 2

    def test_control_plane_killed_and_restarted_under_load(self):
        nginx = self.start_https()
        control_plane, sidecar = self.start_mesh([nginx.port])
        kept = KeptConnections(self.listener_port, count=1)
        self.addCleanup(kept.close)
        load = RequestLoad(self.listener_port, threads=3)
        self.addCleanup(load.stop)
        load.wait_more(20)

        before = self.xds(sidecar)
        versions_before = versions_by_type(before)
        self.assertEqual(before["control_plane"]["state"], "CONNECTED")
        established = sidecar.stat("xds_stream_established")
        closed = sidecar.stat("xds_stream_closed")
        serial_before = self.issued_serial(control_plane)

        control_plane.kill()
        sidecar.wait_log(rf"xds: ADS stream to 127\.0\.0\.1:{control_plane.port} ended: .*; "
                         r"retrying in \d+ ms")
        harness.wait_until(lambda: sidecar.stat("xds_stream_closed") > closed,
                           what="xds_stream_closed to count the lost stream")
        plane = self.xds(sidecar)["control_plane"]
        self.assertNotEqual(plane["state"], "CONNECTED")
        self.assertIn("ended", plane["last_disconnect"])
        # Traffic goes on while the control plane is away and the sidecar's
        # attempts to reach it fail (the first retries come after 0.25-0.75 s
        # and 0.5-1.5 s).
        harness.wait_until(lambda: sidecar.stat("xds_stream_closed") >= closed + 3, timeout=15,
                           what="two failed reconnection attempts")
        load.wait_more(50)
        self.assertEqual(load.failures, [])
        self.assertEqual(kept.failures, [])

        down_at = time.monotonic()
        control_plane.start()
        harness.wait_until(lambda: sidecar.stat("xds_stream_established") == established + 1,
                           timeout=30, what="the sidecar to reconnect")
        reconnect_s = time.monotonic() - down_at
        # The restarted server knows nothing of the node: it issues a new
        # certificate, which must be what new connections present.
        node = wait_serving(control_plane, NODE_ID)
        serial_after = normalize_serial(node["certificate"]["serial_number"])
        self.assertNotEqual(serial_after, serial_before)
        sidecar.wait_log(tls_reloaded_pattern(serial_after))

        after = self.xds(sidecar)
        self.assertEqual(after["control_plane"]["state"], "CONNECTED")
        versions_after = versions_by_type(after)
        for kind in ("CDS", "EDS", "LDS"):
            self.assertEqual(versions_after[kind], versions_before[kind], kind)
            self.assertEqual(node["types"][kind]["acked_version"], versions_after[kind], kind)
        self.assertNotEqual(versions_after["SDS"], versions_before["SDS"])
        self.assertEqual(node["types"]["SDS"]["acked_version"], versions_after["SDS"])
        self.assertEqual(self.probe(nginx, "after-restart"), serial_after)

        load.wait_more(20)
        load.stop()
        kept.stop()
        self.assertEqual(load.failures, [])
        self.assertEqual(kept.failures, [])
        self.assertEqual(sidecar.stat("xds_update_rejected"), 0)
        report(f"control plane restart: reconnected {reconnect_s:.1f}s after the restart, "
               f"{load.successes} new connections and {kept.requests} kept-connection "
               f"requests, {len(load.failures) + len(kept.failures)} failures")

    # 3

    def test_sidecar_restarted_while_control_plane_is_down_serves_its_backup(self):
        nginx = self.start_https()
        backup = self.tmp.join("xds-backup.json")
        control_plane, sidecar = self.start_mesh([nginx.port], backup_path=backup)

        def backup_has_secrets():
            with open(backup) as f:
                return any(r["type_url"].endswith(".Secret") for r in json.load(f)["resources"])

        harness.wait_until(backup_has_secrets, what=f"{backup} to hold the secrets")
        # The backup holds the workload's key (SDS sent it): only the
        # sidecar's user may read it, and the key appears nowhere else; the
        # bootstrap key, which never came over xDS, is not in it.
        self.assertEqual(oct(os.stat(backup).st_mode & 0o777), oct(0o600))
        workload_keys = backup_key_pems(backup)
        self.assertEqual(len(workload_keys), 1, "the workload key in the backup")
        places = sidecar.admin_pages()
        places["sidecar log"] = sidecar.log()
        self.assertEqual(find_key_material(places, key_material(workload_keys[0], "workload key")),
                         [])
        with open(backup) as f:
            places = {backup: f.read()}
        places.update((f"{backup}, decoded", pem.decode()) for pem in workload_keys)
        self.assertEqual(find_key_material(places, key_material_of_file(self.bootstrap.key,
                                                                        "bootstrap key")), [])
        live_serial = self.probe(nginx, "live")
        self.assertEqual(live_serial, self.issued_serial(control_plane))

        self.assertEqual(control_plane.stop(), 0)
        sidecar.wait_log(r"xds: ADS stream to .* ended")
        self.assertEqual(sidecar.stop(), 0)

        # Ready from the backup, not from the initial fetch timeout: with
        # that timeout far beyond /ready's generous wait, only the backup
        # can make it ready.
        restarted_config = json.loads(json.dumps(sidecar.config))
        restarted_config["xds"]["initial_fetch_timeout_ms"] = 600000
        restarted = self.make_sidecar(restarted_config, name="sidecar-restarted")
        began = time.monotonic()
        restarted.start(timeout=60)
        ready_s = time.monotonic() - began
        restarted.wait_log(r"xds: the control plane is unreachable; serving the last "
                           rf"configuration it gave, from {re.escape(backup)} "
                           r"\(1 cluster, 1 listener\)")
        dump = self.xds(restarted)
        self.assertTrue(dump["control_plane"]["serving_backup"])
        self.assertNotEqual(dump["control_plane"]["state"], "CONNECTED")
        self.assertEqual((dump["dynamic_clusters"], dump["dynamic_listeners"]), (1, 1))
        self.assertEqual(restarted.admin_get("/ready")[0], 200)
        # The saved certificate is what the upstream sees.
        self.assertEqual(self.probe(nginx, "from-backup"), live_serial)

        # Serving from the backup under load while the attempts to reach the
        # control plane keep failing; then it returns: live configuration
        # again, under the same load.
        load = RequestLoad(self.listener_port, threads=3)
        self.addCleanup(load.stop)
        harness.wait_until(lambda: restarted.stat("xds_stream_closed") >= 3, timeout=15,
                           what="three failed attempts to reach the control plane")
        load.wait_more(50)
        self.assertEqual(load.failures, [])
        self.assertTrue(self.xds(restarted)["control_plane"]["serving_backup"])
        control_plane.start()
        restarted.wait_log(r"xds: the control plane answered; the backup is no longer in use",
                           timeout=30)
        node = wait_serving(control_plane, NODE_ID)
        new_serial = normalize_serial(node["certificate"]["serial_number"])
        restarted.wait_log(tls_reloaded_pattern(new_serial))
        dump = self.xds(restarted)
        self.assertFalse(dump["control_plane"]["serving_backup"])
        self.assertEqual(dump["control_plane"]["state"], "CONNECTED")
        self.assertEqual(self.probe(nginx, "live-again"), new_serial)
        load.wait_more(20)
        load.stop()
        self.assertEqual(load.failures, [])
        self.assertEqual(restarted.admin_get("/ready")[0], 200)
        report(f"backup: ready from the backup in {ready_s:.2f}s; {load.successes} new "
               f"connections across the return to live configuration, "
               f"{len(load.failures)} failures")

    # 3b

    def test_a_control_plane_that_names_another_host_is_refused(self):
        # xds-server's certificate comes from the CA the sidecar trusts, but
        # it names xds.local and 127.0.0.1: a sidecar told to expect another
        # name refuses it, takes no configuration, and says why.
        nginx = self.start_https()
        control_plane, xds = self.start_control_plane([nginx.port])
        xds["tls"]["server_name"] = "xds.elsewhere"
        xds["initial_fetch_timeout_ms"] = 60000
        sidecar = self.make_sidecar(harness.config([], [], xds=xds)).start(wait_ready=False)
        # Two attempts refused: the second is the later event the first
        # configuration would have come before.
        accepted = r"xds update accepted|configuration applied: [1-9]"
        harness.wait_until(lambda: (sidecar.stat("xds_stream_closed") or 0) >= 2 or
                           sidecar.log_lines(accepted), timeout=15,
                           what="two refused attempts to reach the control plane")
        self.assertEqual(sidecar.log_lines(accepted), [], "configuration from a control plane "
                         "that names another host")
        lines = sidecar.wait_log(rf"xds: ADS stream to 127\.0\.0\.1:{control_plane.port} ended: ",
                                 count=2)
        self.assertRegex(lines[0], r"TLS handshake with .* failed \(name_mismatch\)", lines)
        self.assertEqual(control_plane.node(NODE_ID), None, "the control plane served the node")
        dump = self.xds(sidecar)
        self.assertNotEqual(dump["control_plane"]["state"], "CONNECTED")
        self.assertEqual((dump["dynamic_clusters"], dump["dynamic_listeners"]), (0, 0), dump)
        self.assertEqual(set(versions_by_type(dump).values()) - {""}, set(), dump)
        self.assertEqual(sidecar.admin_get("/ready")[0], 503)
        self.assertFalse(harness.port_accepts(self.listener_port))
        self.assertEqual(nginx.access_entries(), [])

    # 3c

    def test_not_ready_with_nothing_to_serve_until_the_control_plane_gives_a_listener(self):
        # First start with the control plane down (nothing listens at its
        # address) and no backup: once the initial fetch timeout has passed
        # the sidecar has no listener at all. /ready must not pass then (the
        # pod would go Ready and the application find nothing on its port);
        # it says why, and passes once a control plane appears and delivers
        # the listener.
        nginx = self.start_https()
        control_plane, xds = self.start_control_plane([nginx.port], start=False)
        xds["initial_fetch_timeout_ms"] = 1000
        sidecar = self.make_sidecar(harness.config([], [], xds=xds)).start(wait_ready=False)
        sidecar.wait_log(r"xds: initial fetch timed out after 1000 ms")
        no_listener = (503, "NOT READY: no listener to serve: none in the configuration file, "
                            "and none yet from the control plane or its backup\n")
        self.assertEqual(sidecar.admin_get("/ready"), no_listener)
        self.assertEqual(sidecar.admin_json("/server_info")["state"], "LIVE")
        # And it stays so while the control plane is away.
        harness.wait_until(lambda: (sidecar.stat("xds_stream_closed") or 0) >= 2, timeout=15,
                           what="two failed attempts to reach the control plane")
        self.assertEqual(sidecar.admin_get("/ready"), no_listener)
        self.assertFalse(harness.port_accepts(self.listener_port))

        control_plane.start()
        sidecar.wait_ready(timeout=45)
        self.assertEqual(sidecar.admin_get("/ready"), (200, "LIVE\n"))
        wait_serving(control_plane, NODE_ID)
        self.assertEqual(http_get(self.listener_port, "/hello.txt?probe=after"), (200, HELLO))

    # 4

    def test_a_resource_file_edit_reaches_the_sidecar(self):
        first = self.start_https()
        second = self.start_https()
        control_plane, sidecar = self.start_mesh([first.port])
        self.assertEqual(len(sidecar.hosts("backend")), 1)
        versions_before = versions_by_type(self.xds(sidecar))
        established = sidecar.stat("xds_stream_established")

        # xds-server re-reads its files only when its watch says so, and the
        # sidecar learns only from its stream: arriving at all, on the same
        # stream, proves both (a generous deadline; the time is reported).
        began = time.monotonic()
        self.write_backend([first.port, second.port])
        harness.wait_until(lambda: len(sidecar.hosts("backend")) == 2, interval=0.01,
                           what="the second endpoint in /clusters")
        elapsed = time.monotonic() - began
        self.assertEqual(sidecar.stat("xds_stream_established"), established,
                         "the edit came on a new stream, not the one open")

        versions_after = versions_by_type(self.xds(sidecar))
        self.assertNotEqual(versions_after["EDS"], versions_before["EDS"])
        for kind in ("CDS", "LDS", "SDS"):
            self.assertEqual(versions_after[kind], versions_before[kind], kind)
        # Both upstreams get connections now.
        for i in range(40):
            self.assertEqual(http_get(self.listener_port, f"/hello.txt?probe=spread-{i}"),
                             (200, HELLO))
            if second.access_entries() and len(first.access_entries()) > 0:
                break
        self.assertTrue(second.access_entries(), "no connection reached the new endpoint")
        report(f"resource edit: the new endpoint was in /clusters {elapsed * 1000:.0f} ms "
               f"after the file was written")

    def test_the_serving_certificate_rotates_under_an_open_stream(self):
        # xds-server's own certificate lives in a Secret volume that
        # cert-manager renews: a new connection gets the new certificate
        # while the sidecar's ADS stream, opened on the old one, stays up
        # and keeps taking updates; a broken update is refused with a log
        # line and the certificate in use keeps serving.
        first = self.start_https()
        second = self.start_https()
        volume = SecretVolume(self.tmp.mkdir("xds-server-tls"))
        volume.put({"tls.crt": self.xds_tls.crt, "tls.key": self.xds_tls.key})
        control_plane, xds = self.start_control_plane([first.port], tls=volume.pair())
        sidecar = self.start_sidecar(harness.config([], [], xds=xds))
        wait_serving(control_plane, NODE_ID)
        established = sidecar.stat("xds_stream_established")
        served = lambda: served_certificate_der(control_plane.port, self.bootstrap,
                                                self.pki.ca_crt)
        self.assertEqual(served(), first_certificate_der(self.xds_tls.crt))

        renewed = self.pki.issue("xds-server-renewed", cn=XDS_SERVER_NAME, dns=[XDS_SERVER_NAME],
                                 ips=["127.0.0.1"], server=True)
        volume.put({"tls.crt": renewed.crt, "tls.key": renewed.key})
        control_plane.wait_log(r"tls: serving certificate reloaded \(serial [0-9a-f]+, expires ")
        self.assertEqual(served(), first_certificate_der(renewed.crt))
        serving = control_plane.status()["serving_certificate"]
        self.assertEqual((serving["reloads"], serving["reload_failures"]), (1, 0), serving)
        self.assertEqual(normalize_serial(serving["current"]["serial_number"]),
                         self.pki.serial(renewed.crt))
        # The stream opened on the old certificate is the one that brings
        # the next update.
        self.write_backend([first.port, second.port])
        harness.wait_until(lambda: len(sidecar.hosts("backend")) == 2,
                           what="the second endpoint over the open stream")
        self.assertEqual(sidecar.stat("xds_stream_established"), established)
        self.assertEqual(self.xds(sidecar)["control_plane"]["state"], "CONNECTED")

        # Broken updates: not a certificate; then a key of another
        # certificate. Each is refused, said once, counted; the renewed
        # certificate keeps serving new connections.
        refused = "tls: the new serving certificate is refused, the one in use keeps serving: "
        volume.put({"tls.crt": b"not a certificate\n", "tls.key": renewed.key})
        control_plane.wait_log(re.escape(refused) + r"cannot use the server certificate")
        self.assertEqual(served(), first_certificate_der(renewed.crt))
        volume.put({"tls.crt": renewed.crt, "tls.key": self.xds_tls.key})
        control_plane.wait_log(re.escape(refused) + r"the server key .* does not match")
        self.assertEqual(served(), first_certificate_der(renewed.crt))
        serving = control_plane.status()["serving_certificate"]
        self.assertEqual((serving["reloads"], serving["reload_failures"]), (1, 2), serving)
        self.assertIn("does not match", serving["last_error"])
        self.assertEqual(len([l for l in control_plane.log().splitlines() if refused in l]), 2)
        self.assertEqual(sidecar.stat("xds_stream_established"), established)
        self.assertEqual(http_get(self.listener_port, "/hello.txt?probe=after-rotation"),
                         (200, HELLO))

    def test_one_version_per_resource_set_in_the_log_status_and_the_sidecar(self):
        first = self.start_https()
        second = self.start_https()
        control_plane, sidecar = self.start_mesh([first.port])
        self.assert_one_version_per_type(control_plane, sidecar)
        # After an edit of the endpoints too.
        eds_before = control_plane.status()["resources"]["EDS"]["version"]
        self.write_backend([first.port, second.port])

        def applied():
            node = control_plane.node(NODE_ID)
            return (versions_by_type(self.xds(sidecar))["EDS"] not in ("", eds_before) and
                    node is not None and all(t["synced"] for t in node["types"].values()))

        harness.wait_until(applied, what="the sidecar to apply and ACK the new endpoints")
        self.assert_one_version_per_type(control_plane, sidecar)

    def assert_one_version_per_type(self, control_plane, sidecar):
        """Each file set's version in xds-server's /status is the one of its
        last "files: ... now version" line, the one the node ACKed (its
        /status entry and its "ACK" line) and the one the sidecar shows in
        /config_dump."""
        status = control_plane.status()
        node = [n for n in status["nodes"] if n["id"] == NODE_ID][0]
        in_sidecar = versions_by_type(self.xds(sidecar))
        log = control_plane.log()
        for kind in ("CDS", "EDS", "LDS"):
            version = status["resources"][kind]["version"]
            logged = re.findall(rf"files: {kind} now version (\S+) ", log)
            acks = re.findall(rf"ads: node {re.escape(NODE_ID)} ACK {kind} version (\S+)", log)
            self.assertEqual((logged[-1:], node["types"][kind]["acked_version"], acks[-1:],
                              in_sidecar[kind]),
                             ([version], version, [version], version),
                             f"{kind}: /status's resources, log line, /status's node ACK, ACK "
                             f"log line, the sidecar's /config_dump")

    # 5

    def test_an_http_listener_from_a_resource_file_routes_by_path(self):
        backend = self.start_https()
        payments_body = b"hello from payments\n"
        payments = self.start_https(files={"pay/who.txt": payments_body})
        control_plane, sidecar = self.start_mesh([backend.port])
        web_port = harness.free_port()
        write_resources(os.path.join(os.path.dirname(self.resource_file), "web.json"), [
            eds_cluster("payments", SERVER_NAME),
            load_assignment("payments", [payments.port]),
            http_listener("web", web_port, [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/pay/"}, "route": {"cluster": "payments"}},
                {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]),
        ])
        harness.wait_port(web_port, process=sidecar.process.popen, what="the HTTP listener")
        self.assertEqual(http_get(web_port, "/hello.txt?probe=web-1"), (200, HELLO))
        self.assertEqual(http_get(web_port, "/pay/who.txt?probe=web-2"), (200, payments_body))
        # Each upstream saw its request, with the certificate xds-server
        # issued to this node.
        serial = self.issued_serial(control_plane)
        for nginx, marker in ((backend, "probe=web-1"), (payments, "probe=web-2")):
            self.assertEqual(harness.wait_until(lambda: serials_by_marker(nginx).get(marker),
                                                what=f"nginx to log {marker}")[0], serial)
        self.assertNotIn("probe=web-2", serials_by_marker(backend))
        web = next(listener for listener in
                   sidecar.admin_json("/config_dump")["configs"][0]["config"]["listeners"]
                   if listener["name"] == "web")
        self.assertEqual((web["protocol"], web["cluster"], web["http"]["routes"]),
                         ("http", "backend",
                          [{"host": None, "path_prefix": "/pay/", "cluster": "payments"},
                           {"host": None, "path_prefix": None, "cluster": "backend"}]))


    def test_a_listener_on_a_taken_port_is_refused_alone(self):
        # Another program listens (with SO_REUSEPORT, as the sidecar's
        # workers do) where a listener from the control plane wants to: that
        # listener stays out, the rest of the update applies and is ACKed.
        backend = self.start_https()
        control_plane, sidecar = self.start_mesh([backend.port])
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        taken_port, free_port = taken.getsockname()[1], harness.free_port()
        write_resources(os.path.join(os.path.dirname(self.resource_file), "more.json"), [
            tcp_listener("taken", taken_port, "backend"),
            tcp_listener("free", free_port, "backend"),
        ])
        harness.wait_port(free_port, process=sidecar.process.popen, what="the listener 'free'")
        self.assertEqual(http_get(free_port, "/hello.txt?probe=free"), (200, HELLO))
        line = sidecar.wait_log(r'xds: listener "taken" refused: ')[0]
        self.assertIn(f"address 127.0.0.1:{taken_port} is in use by another process "
                      f"(pid {os.getpid()}, ", line)
        lds = next(t for t in self.xds(sidecar)["resource_types"] if t["type_url"].endswith(
            "config.listener.v3.Listener"))
        self.assertEqual(lds["nacks"], 0, lds)
        listeners = [l["name"] for l in
                     sidecar.admin_json("/config_dump")["configs"][0]["config"]["listeners"]]
        self.assertEqual(sorted(listeners), ["backend-in", "free"])
        self.assertEqual(http_get(self.listener_port, "/hello.txt?probe=kept"), (200, HELLO))

    # 6

    def test_certificate_rotates_under_http_keep_alive_load(self):
        nginx = self.start_https()
        control_plane, sidecar = self.start_mesh([nginx.port], cert_ttl="4s")
        web_port = harness.free_port()
        write_resources(os.path.join(os.path.dirname(self.resource_file), "web.json"), [
            http_listener("web", web_port, [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]),
        ])
        harness.wait_port(web_port, process=sidecar.process.popen, what="the HTTP listener")
        rotations_before = sidecar.stat("tls_reload_success")
        # Four client connections, each request back to back on its own
        # connection: a failed request, a non-200 or a reset connection fails.
        kept = KeptConnections(web_port, count=4, interval=0)
        self.addCleanup(kept.close)
        harness.wait_until(lambda: sidecar.stat("tls_reload_success") >= rotations_before + 4 or
                           kept.failures, timeout=60, interval=0.5,
                           what="4 certificate rotations under HTTP load")
        kept.wait_more(200)
        kept.stop()
        self.assertEqual(kept.failures, [])
        self.assertEqual(sidecar.stat("http_rq_5xx"), 0)
        self.assertEqual(sidecar.stat("http_rq_2xx"), sidecar.stat("http_rq_total"))
        # The same client connections carried requests under every
        # certificate: each rotation reached them at their next request.
        loads = tls_loads(sidecar)
        seen = serials_by_marker(nginx)
        kept_serials = {serial for marker, (serial, _) in seen.items()
                        if marker.startswith("kept=")}
        rotated = {serial for _, _, serial in loads[-4:]}
        self.assertGreaterEqual(len(kept_serials & rotated), 3, (kept_serials, rotated))
        # Few handshakes for many requests: pooled upstream connections.
        self.assertGreater(sidecar.stat("http_pool_reused"), 10 * sidecar.stat("http_pool_new"))
        report(f"HTTP rotation: {sidecar.stat('tls_reload_success') - rotations_before} "
               f"rotations, {kept.requests} requests on 4 kept client connections, "
               f"{sidecar.stat('http_pool_new')} upstream connections, "
               f"{len(kept.failures)} failures, {sidecar.stat('http_rq_5xx')} 5xx")

if __name__ == "__main__":
    unittest.main()
