/* cli.c: the `certs` command: make a CA, issue certificates, inspect PEM
 * files. Files that exist are never replaced without --force. Exit codes: 0
 * success, 1 failure (files in the way included), 2 bad usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/mem.h>

#include "certs/certs.h"
#include "common/file.h"
#include "common/version.h"

#define EXIT_USAGE 2
#define MAX_NAMES 64

static const char usage_text[] =
    "usage:\n"
    "  certs ca --out DIR [--cn NAME] [--ttl 87600h] [--force]\n"
    "      writes DIR/ca.crt and DIR/ca.key (a self-signed ECDSA P-256 CA)\n"
    "  certs issue --ca DIR --out PREFIX [--cn NAME] [--dns NAME]... [--ip IP]...\n"
    "              [--uri URI]... [--client] [--server] [--ttl 24h]\n"
    "              [--not-before OFFSET] [--key-password-file FILE] [--key FILE]\n"
    "              [--force]\n"
    "      writes PREFIX.crt and PREFIX.key, signed by DIR/ca.crt and DIR/ca.key.\n"
    "      Without --client or --server the certificate is good for both. The CN\n"
    "      defaults to the first DNS name, URI or IP, else \"workload\".\n"
    "      --not-before is an offset from now, e.g. -48h (with --ttl 24h: an\n"
    "      expired certificate, for tests). --key-password-file encrypts the key\n"
    "      with the first line of FILE. --key certifies the key in FILE instead of\n"
    "      making one (a renewal that keeps the key) and writes PREFIX.crt only;\n"
    "      --key-password-file then decrypts FILE.\n"
    "  certs inspect FILE\n"
    "      prints the certificate(s) in FILE as JSON (an array for several)\n"
    "  certs version (or --version)\n"
    "      prints the version, the same as sidecar --version\n"
    "  certs help (or --help)\n"
    "      prints this text\n"
    "ca and issue never replace a file that exists: they refuse, name the files\n"
    "and exit 1. --force replaces them (a new CA key stops every certificate the\n"
    "old one signed from verifying). Files are written whole (a temporary file\n"
    "renamed into place); keys with mode 0600.\n"
    "durations: 90s, 15m, 24h, 30d, or plain seconds\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "certs: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nrun `certs --help` for usage\n");
  return EXIT_USAGE;
}

static int failure(const char *message) {
  fprintf(stderr, "certs: %s\n", message);
  return EXIT_FAILURE;
}

/* option_value returns the value of "--name VALUE" or "--name=VALUE" at
 * argv[*i] (advancing *i), or NULL when argv[*i] is not that option. Sets
 * *missing when the option is there without a value. */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *missing) {
  size_t len = strlen(name);
  const char *arg = argv[*i];
  if (strncmp(arg, name, len) != 0) return NULL;
  if (arg[len] == '=') return arg + len + 1;
  if (arg[len] != '\0') return NULL;
  if (*i + 1 >= argc) {
    *missing = true;
    return NULL;
  }
  return argv[++*i];
}

/* mkdir_p makes `path` and its parents. */
static int mkdir_p(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

/* refuse_existing returns 0 when `force` is set or no file of `paths`
 * (`count` of them) exists. Otherwise it says on stderr which exist and that
 * --force replaces them, and returns -1: nothing has been written. */
static int refuse_existing(const char *const *paths, size_t count, bool force) {
  if (force) return 0;
  const char *found[4];
  size_t found_count = 0;
  for (size_t i = 0; i < count && found_count < sizeof(found) / sizeof(found[0]); i++) {
    struct stat st;
    if (lstat(paths[i], &st) == 0) found[found_count++] = paths[i];
  }
  if (found_count == 0) return 0;
  fprintf(stderr, "certs: ");
  for (size_t i = 0; i < found_count; i++)
    fprintf(stderr, "%s%s", i == 0 ? "" : i + 1 == found_count ? " and " : ", ", found[i]);
  fprintf(stderr, " already exist%s; nothing was written. --force replaces %s\n",
          found_count == 1 ? "s" : "", found_count == 1 ? "it" : "them");
  return -1;
}

static int parse_ttl(const char *text, int64_t *out) {
  if (ms_duration_parse(text, out) != 0 || *out <= 0) {
    return usage_error("invalid --ttl \"%s\": use e.g. 90s, 15m, 24h, 30d", text);
  }
  return 0;
}

static int command_ca(int argc, char **argv) {
  const char *out = NULL, *cn = "mtls-sidecar CA", *ttl_text = "87600h";
  bool force = false;
  for (int i = 0; i < argc; i++) {
    bool missing = false;
    const char *value;
    if (strcmp(argv[i], "--force") == 0) {
      force = true;
    } else if ((value = option_value(argc, argv, &i, "--out", &missing)) != NULL) {
      out = value;
    } else if ((value = option_value(argc, argv, &i, "--cn", &missing)) != NULL) {
      cn = value;
    } else if ((value = option_value(argc, argv, &i, "--ttl", &missing)) != NULL) {
      ttl_text = value;
    } else if (missing) {
      return usage_error("option %s needs a value", argv[i]);
    } else {
      return usage_error("unknown argument \"%s\" for `certs ca`", argv[i]);
    }
  }
  if (out == NULL) return usage_error("%s", "`certs ca` needs --out DIR");
  int64_t ttl = 0;
  if (parse_ttl(ttl_text, &ttl) != 0) return EXIT_USAGE;

  char err[MS_ERR_LEN], cert_path[4096], key_path[4096];
  snprintf(cert_path, sizeof(cert_path), "%s/ca.crt", out);
  snprintf(key_path, sizeof(key_path), "%s/ca.key", out);
  const char *targets[] = {cert_path, key_path};
  if (refuse_existing(targets, 2, force) != 0) return EXIT_FAILURE;
  if (mkdir_p(out) != 0) {
    snprintf(err, sizeof(err), "cannot create folder %s: %s", out, strerror(errno));
    return failure(err);
  }
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  int rc = EXIT_FAILURE;
  if (ms_ca_new(cn, ttl, &cert, &key, err, sizeof(err)) == 0 &&
      ms_pem_write_key(key_path, key, err, sizeof(err)) == 0 &&
      ms_pem_write_cert(cert_path, cert, NULL, err, sizeof(err)) == 0) {
    printf("wrote %s and %s\n", cert_path, key_path);
    rc = EXIT_SUCCESS;
  } else {
    failure(err);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return rc;
}

/* load_ca reads DIR/ca.crt and DIR/ca.key. */
static int load_ca(const char *dir, X509 **out_cert, EVP_PKEY **out_key, char *err,
                   size_t err_len) {
  char cert_path[4096], key_path[4096];
  snprintf(cert_path, sizeof(cert_path), "%s/ca.crt", dir);
  snprintf(key_path, sizeof(key_path), "%s/ca.key", dir);
  char *cert_pem = NULL, *key_pem = NULL;
  size_t cert_len = 0, key_len = 0;
  STACK_OF(X509) *chain = NULL;
  EVP_PKEY *key = NULL;
  int rc = -1;
  if (ms_file_read(cert_path, &cert_pem, &cert_len, err, err_len) == 0 &&
      ms_file_read(key_path, &key_pem, &key_len, err, err_len) == 0 &&
      ms_pem_parse_chain(cert_pem, cert_len, cert_path, &chain, err, err_len) == 0 &&
      ms_pem_parse_key(key_pem, key_len, NULL, key_path, &key, err, err_len) == 0) {
    *out_cert = X509_dup(sk_X509_value(chain, 0));
    *out_key = key;
    key = NULL;
    rc = *out_cert != NULL ? 0 : -1;
  }
  if (key_pem != NULL) OPENSSL_cleanse(key_pem, key_len);
  free(cert_pem);
  free(key_pem);
  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(key);
  return rc;
}

/* load_key reads the private key in `path`, decrypted with `password` when
 * it is not NULL. */
static int load_key(const char *path, const char *password, EVP_PKEY **out_key, char *err,
                    size_t err_len) {
  char *pem = NULL;
  size_t len = 0;
  if (ms_file_read(path, &pem, &len, err, err_len) != 0) return -1;
  int rc = ms_pem_parse_key(pem, len, password, path, out_key, err, err_len);
  OPENSSL_cleanse(pem, len);
  free(pem);
  return rc;
}

/* read_password_file returns the first line of `path` (caller frees). */
static char *read_password_file(const char *path, char *err, size_t err_len) {
  char *data = NULL;
  size_t len = 0;
  if (ms_file_read(path, &data, &len, err, err_len) != 0) return NULL;
  data[strcspn(data, "\r\n")] = '\0';
  if (data[0] == '\0') {
    snprintf(err, err_len, "password file %s is empty", path);
    free(data);
    return NULL;
  }
  return data;
}

typedef struct issue_options {
  const char *ca_dir, *out, *cn, *ttl_text, *not_before_text, *password_file, *key_file;
  const char *dns[MAX_NAMES], *ips[MAX_NAMES], *uris[MAX_NAMES];
  size_t dns_count, ip_count, uri_count;
  bool client, server, force;
} issue_options;

static int add_name(const char **list, size_t *count, const char *value) {
  if (*count == MAX_NAMES) return usage_error("too many names (at most 64 of a kind): %s", value);
  list[(*count)++] = value;
  return 0;
}

static int parse_issue(int argc, char **argv, issue_options *o) {
  for (int i = 0; i < argc; i++) {
    bool missing = false;
    const char *v;
    int rc = 0;
    if ((v = option_value(argc, argv, &i, "--ca", &missing)) != NULL) {
      o->ca_dir = v;
    } else if ((v = option_value(argc, argv, &i, "--out", &missing)) != NULL) {
      o->out = v;
    } else if ((v = option_value(argc, argv, &i, "--cn", &missing)) != NULL) {
      o->cn = v;
    } else if ((v = option_value(argc, argv, &i, "--dns", &missing)) != NULL) {
      rc = add_name(o->dns, &o->dns_count, v);
    } else if ((v = option_value(argc, argv, &i, "--ip", &missing)) != NULL) {
      rc = add_name(o->ips, &o->ip_count, v);
    } else if ((v = option_value(argc, argv, &i, "--uri", &missing)) != NULL) {
      rc = add_name(o->uris, &o->uri_count, v);
    } else if ((v = option_value(argc, argv, &i, "--ttl", &missing)) != NULL) {
      o->ttl_text = v;
    } else if ((v = option_value(argc, argv, &i, "--not-before", &missing)) != NULL) {
      o->not_before_text = v;
    } else if ((v = option_value(argc, argv, &i, "--key-password-file", &missing)) != NULL) {
      o->password_file = v;
    } else if ((v = option_value(argc, argv, &i, "--key", &missing)) != NULL) {
      o->key_file = v;
    } else if (strcmp(argv[i], "--client") == 0) {
      o->client = true;
    } else if (strcmp(argv[i], "--server") == 0) {
      o->server = true;
    } else if (strcmp(argv[i], "--force") == 0) {
      o->force = true;
    } else if (missing) {
      return usage_error("option %s needs a value", argv[i]);
    } else {
      return usage_error("unknown argument \"%s\" for `certs issue`", argv[i]);
    }
    if (rc != 0) return rc;
  }
  if (o->ca_dir == NULL || o->out == NULL) {
    return usage_error("%s", "`certs issue` needs --ca DIR and --out PREFIX");
  }
  return 0;
}

/* parse_offset parses "-48h", "+1h" or "1h" as seconds from now. */
static int parse_offset(const char *text, int64_t *out) {
  int sign = 1;
  if (text[0] == '-' || text[0] == '+') sign = text[0] == '-' ? -1 : 1;
  int64_t seconds = 0;
  if (ms_duration_parse(text + (sign == -1 || text[0] == '+'), &seconds) != 0) {
    return usage_error("invalid --not-before \"%s\": use an offset from now, e.g. -48h", text);
  }
  *out = sign * seconds;
  return 0;
}

static int command_issue(int argc, char **argv) {
  issue_options o;
  memset(&o, 0, sizeof(o));
  o.ttl_text = "24h";
  if (parse_issue(argc, argv, &o) != 0) return EXIT_USAGE;
  int64_t ttl = 0, offset = 0;
  if (parse_ttl(o.ttl_text, &ttl) != 0) return EXIT_USAGE;
  if (o.not_before_text != NULL && parse_offset(o.not_before_text, &offset) != 0) {
    return EXIT_USAGE;
  }

  ms_issue_request request = {
      .common_name = o.cn != NULL      ? o.cn
                     : o.dns_count > 0 ? o.dns[0]
                     : o.uri_count > 0 ? o.uris[0]
                     : o.ip_count > 0  ? o.ips[0]
                                       : "workload",
      .dns = o.dns,
      .dns_count = o.dns_count,
      .ips = o.ips,
      .ip_count = o.ip_count,
      .uris = o.uris,
      .uri_count = o.uri_count,
      .client = o.client || !o.server,
      .server = o.server || !o.client,
      .ttl_seconds = ttl,
  };
  if (o.not_before_text != NULL) request.not_before = (int64_t)time(NULL) + offset;

  char err[MS_ERR_LEN] = "", cert_path[4096], key_path[4096];
  snprintf(cert_path, sizeof(cert_path), "%s.crt", o.out);
  snprintf(key_path, sizeof(key_path), "%s.key", o.out);
  const char *targets[] = {cert_path, key_path};
  if (refuse_existing(targets, o.key_file != NULL ? 1 : 2, o.force) != 0) return EXIT_FAILURE;
  X509 *ca_cert = NULL, *cert = NULL;
  EVP_PKEY *ca_key = NULL, *key = NULL;
  char *password = NULL;
  int rc = EXIT_FAILURE;
  if ((o.password_file == NULL ||
       (password = read_password_file(o.password_file, err, sizeof(err))) != NULL) &&
      load_ca(o.ca_dir, &ca_cert, &ca_key, err, sizeof(err)) == 0) {
    if (o.key_file != NULL) {
      /* A renewal: the certificate is for the key in the file; no key is written. */
      if (load_key(o.key_file, password, &key, err, sizeof(err)) == 0 &&
          ms_cert_issue_for_key(&request, key, ca_cert, ca_key, &cert, err, sizeof(err)) == 0 &&
          ms_pem_write_cert(cert_path, cert, NULL, err, sizeof(err)) == 0) {
        printf("wrote %s for the key in %s\n", cert_path, o.key_file);
        rc = EXIT_SUCCESS;
      }
    } else if (ms_cert_issue(&request, ca_cert, ca_key, &cert, &key, err, sizeof(err)) == 0 &&
               ms_pem_write_key_encrypted(key_path, key, password, err, sizeof(err)) == 0 &&
               ms_pem_write_cert(cert_path, cert, NULL, err, sizeof(err)) == 0) {
      printf("wrote %s and %s\n", cert_path, key_path);
      rc = EXIT_SUCCESS;
    }
  }
  if (rc != EXIT_SUCCESS) failure(err);
  if (password != NULL) {
    OPENSSL_cleanse(password, strlen(password));
    free(password);
  }
  X509_free(ca_cert);
  X509_free(cert);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(key);
  return rc;
}

static int command_inspect(int argc, char **argv) {
  if (argc != 1) return usage_error("%s", "`certs inspect` takes one FILE");
  char err[MS_ERR_LEN];
  char *pem = NULL;
  size_t len = 0;
  STACK_OF(X509) *chain = NULL;
  if (ms_file_read(argv[0], &pem, &len, err, sizeof(err)) != 0 ||
      ms_pem_parse_chain(pem, len, argv[0], &chain, err, sizeof(err)) != 0) {
    free(pem);
    return failure(err);
  }
  free(pem);
  size_t count = sk_X509_num(chain);
  int rc = EXIT_SUCCESS;
  if (count > 1) printf("[\n");
  for (size_t i = 0; i < count && rc == EXIT_SUCCESS; i++) {
    ms_cert_info info;
    char *json = NULL;
    if (ms_cert_info_init(&info, sk_X509_value(chain, i)) != 0) {
      rc = failure("out of memory");
      break;
    }
    json = ms_cert_info_to_json(&info);
    ms_cert_info_cleanup(&info);
    if (json == NULL) {
      rc = failure("out of memory");
      break;
    }
    printf("%s%s\n", json, i + 1 < count ? "," : "");
    free(json);
  }
  if (count > 1 && rc == EXIT_SUCCESS) printf("]\n");
  sk_X509_pop_free(chain, X509_free);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage_text, stderr);
    return EXIT_USAGE;
  }
  const char *command = argv[1];
  if (strcmp(command, "help") == 0) {
    fputs(usage_text, stdout);
    return EXIT_SUCCESS;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage_text, stdout);
      return EXIT_SUCCESS;
    }
  }
  if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
    if (argc > 2) return usage_error("`certs %s` takes no argument", command);
    printf("certs %s (%s)\n", MS_VERSION, OPENSSL_VERSION_TEXT);
    return EXIT_SUCCESS;
  }
  if (strcmp(command, "ca") == 0) return command_ca(argc - 2, argv + 2);
  if (strcmp(command, "issue") == 0) return command_issue(argc - 2, argv + 2);
  if (strcmp(command, "inspect") == 0) return command_inspect(argc - 2, argv + 2);
  return usage_error("unknown command \"%s\"", command);
}
