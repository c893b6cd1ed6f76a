/* server_test_util.c: see server_test_util.h. */
#include "xds-server/server_test_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "certs/certs.h"
#include "common/file.h"
#include "xds/grpc/grpc_test_util.h"

static char dir[512];

const char *server_test_dir_init(const char *name) {
  const char *tmp = getenv("TEST_TMPDIR");
  snprintf(dir, sizeof(dir), "%s/%s-XXXXXX", tmp != NULL ? tmp : "/tmp", name);
  if (mkdtemp(dir) == NULL) grpc_test_die("mkdtemp", strerror(errno));
  return dir;
}

void server_test_path(char *out, size_t len, const char *name) {
  snprintf(out, len, "%s/%s", dir, name);
}

void server_test_mkdir(const char *name) {
  char path[1024];
  server_test_path(path, sizeof(path), name);
  if (mkdir(path, 0755) != 0) grpc_test_die(path, strerror(errno));
}

void server_test_write_text(const char *name, const char *text) {
  char path[1024], err[MS_ERR_LEN];
  server_test_path(path, sizeof(path), name);
  if (ms_file_write_atomic(path, text, strlen(text), 0644, err, sizeof(err)) != 0)
    grpc_test_die("write", err);
}

void server_test_write_pem(const char *cert_name, X509 *cert, const char *key_name, EVP_PKEY *key) {
  char path[1024], err[MS_ERR_LEN];
  if (key_name != NULL) {
    server_test_path(path, sizeof(path), key_name);
    if (ms_pem_write_key(path, key, err, sizeof(err)) != 0) grpc_test_die("write", err);
  }
  server_test_path(path, sizeof(path), cert_name);
  if (ms_pem_write_cert(path, cert, NULL, err, sizeof(err)) != 0) grpc_test_die("write", err);
}

void server_test_write_ca(const char *cn, const char *cert_name, const char *key_name,
                          X509 **out_cert, EVP_PKEY **out_key) {
  char err[MS_ERR_LEN];
  if (ms_ca_new(cn, 86400, out_cert, out_key, err, sizeof(err)) != 0)
    grpc_test_die("ms_ca_new", err);
  server_test_write_pem(cert_name, *out_cert, key_name, *out_key);
}

void server_test_issue(X509 *ca, EVP_PKEY *ca_key, const char *uri, bool server, X509 **out_cert,
                       EVP_PKEY **out_key) {
  const char *dns[1] = {"localhost"}, *ips[1] = {"127.0.0.1"}, *uris[1] = {uri};
  ms_issue_request request = {
      .common_name = server ? "xds-server" : "bootstrap",
      .dns = dns,
      .dns_count = server,
      .ips = ips,
      .ip_count = server,
      .uris = uris,
      .uri_count = uri != NULL,
      .client = !server,
      .server = server,
      .ttl_seconds = 3600,
  };
  char err[MS_ERR_LEN];
  if (ms_cert_issue(&request, ca, ca_key, out_cert, out_key, err, sizeof(err)) != 0)
    grpc_test_die("issue", err);
}

void server_test_pki_init(server_test_pki *pki, const char *ca_cn) {
  server_test_mkdir("ca");
  server_test_write_ca(ca_cn, "ca/ca.crt", "ca/ca.key", &pki->ca, &pki->ca_key);
  server_test_issue(pki->ca, pki->ca_key, NULL, true, &pki->server_cert, &pki->server_key);
  server_test_write_pem("server.crt", pki->server_cert, "server.key", pki->server_key);
  server_test_path(pki->ca_cert_path, sizeof(pki->ca_cert_path), "ca/ca.crt");
  server_test_path(pki->ca_key_path, sizeof(pki->ca_key_path), "ca/ca.key");
  server_test_path(pki->server_cert_path, sizeof(pki->server_cert_path), "server.crt");
  server_test_path(pki->server_key_path, sizeof(pki->server_key_path), "server.key");
}

ms_xds_server_options server_test_pki_options(const server_test_pki *pki) {
  return (ms_xds_server_options){
      .listen_address = "127.0.0.1:0",
      .tls_cert = pki->server_cert_path,
      .tls_key = pki->server_key_path,
      .ca_cert = pki->ca_cert_path,
      .ca_key = pki->ca_key_path,
  };
}

void server_test_pki_cleanup(server_test_pki *pki) {
  X509_free(pki->ca);
  EVP_PKEY_free(pki->ca_key);
  X509_free(pki->server_cert);
  EVP_PKEY_free(pki->server_key);
}
