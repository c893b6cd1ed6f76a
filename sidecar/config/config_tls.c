/* config_tls.c: see config_tls.h. The strings of ms_tls_settings are
 * declared const (the TLS layer borrows them) but are owned here: each is
 * allocated by a parser below and freed by ms_config_tls_cleanup. */
#include "sidecar/config/config_tls.h"

#include <openssl/mem.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static void replace_string(const char **field, char *value) {
  free((void *)*field);
  *field = value;
}

static void replace_list(char ***strings, size_t *count, char **new_strings, size_t new_count) {
  ms_schema_strings_free(*strings, *count);
  *strings = new_strings;
  *count = new_count;
}

static bool has_key(const cJSON *object, const char *name) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return item != NULL && !cJSON_IsNull(item);
}

/* ---- parsers -------------------------------------------------------------- */

static void parse_ciphers(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                          void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  char *copy = ms_schema_strdup(schema, text);
  if (copy != NULL) replace_string(field, copy);
}

static bool is_ip_literal(const char *text) {
  struct in6_addr address;
  return inet_pton(AF_INET, text, &address) == 1 || inet_pton(AF_INET6, text, &address) == 1;
}

static void parse_server_name(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                              void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  for (const char *c = text; *c != '\0'; c++) {
    if (isspace((unsigned char)*c) || *c == '/') {
      ms_schema_error(schema, "\"%s\" is not a host name; write one like \"orders.shop.svc\"",
                      text);
      return;
    }
  }
  if (strchr(text, ':') != NULL && !is_ip_literal(text)) {
    ms_schema_error(schema, "\"%s\": a server name has no port; write one like \"orders.shop.svc\"",
                    text);
    return;
  }
  ms_schema_parse_string(schema, value, key, field);
}

static const char *const san_prefixes[] = {"DNS:", "URI:", "IP:", "EMAIL:"};

static bool check_subject_alt_name(ms_schema *schema, const char *san) {
  for (size_t i = 0; i < COUNT(san_prefixes); i++) {
    size_t length = strlen(san_prefixes[i]);
    if (strncmp(san, san_prefixes[i], length) != 0) continue;
    if (san[length] == '\0') {
      ms_schema_error(schema, "\"%s\" names nothing after \"%s\"", san, san_prefixes[i]);
      return false;
    }
    if (strcmp(san_prefixes[i], "IP:") == 0 && !is_ip_literal(san + length)) {
      ms_schema_error(schema, "\"%s\": \"%s\" is not an IP address", san, san + length);
      return false;
    }
    return true;
  }
  ms_schema_error(schema,
                  "\"%s\" must start with DNS:, URI:, IP: or EMAIL:, like "
                  "\"URI:spiffe://shop/orders\"",
                  san);
  return false;
}

static void parse_match_sans(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                             void *field) {
  ms_cluster_tls_config *tls = field;
  char **sans;
  size_t count;
  if (!ms_schema_parse_string_list(schema, value, &sans, &count)) return;
  bool ok = true;
  for (size_t i = 0; i < count; i++) {
    size_t saved = ms_schema_push_index(schema, i);
    ok &= check_subject_alt_name(schema, sans[i]);
    ms_schema_pop(schema, saved);
  }
  if (!ok) {
    ms_schema_strings_free(sans, count);
    return;
  }
  replace_list(&tls->match_subject_alt_names, &tls->match_subject_alt_name_count, sans, count);
}

/* In protocol order, oldest first: a list must name a contiguous run. */
static const struct tls_version {
  const char *name;
  uint16_t version;
  bool allowed;
} tls_versions[] = {
    {"SSLv3", SSL3_VERSION, false},     {"TLSv1", TLS1_VERSION, false},
    {"TLSv1.1", TLS1_1_VERSION, false}, {"TLSv1.2", TLS1_2_VERSION, true},
    {"TLSv1.3", TLS1_3_VERSION, true},
};
static const char *const allowed_versions[] = {"TLSv1.2", "TLSv1.3"};

/* tls_version_index reports a bad entry and returns -1, or its index. */
static int tls_version_index(ms_schema *schema, const char *name) {
  for (size_t v = 0; v < COUNT(tls_versions); v++) {
    if (strcmp(name, tls_versions[v].name) != 0) continue;
    if (!tls_versions[v].allowed) {
      ms_schema_error(schema,
                      "\"%s\" is refused: TLS 1.2 is the minimum; use \"TLSv1.2\" and/or "
                      "\"TLSv1.3\"",
                      name);
      return -1;
    }
    return (int)v;
  }
  char problem[160];
  snprintf(problem, sizeof(problem), "unknown protocol version \"%.100s\"", name);
  ms_schema_error_unknown(schema, problem, name, allowed_versions, COUNT(allowed_versions));
  return -1;
}

static void parse_protocols(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field) {
  ms_cluster_tls_config *tls = field;
  char **names;
  size_t count;
  if (!ms_schema_parse_string_list(schema, value, &names, &count)) return;
  bool ok = count > 0;
  if (count == 0) {
    ms_schema_error(schema, "must list at least one version, like [\"TLSv1.2\", \"TLSv1.3\"]");
  }
  bool used[COUNT(tls_versions)] = {false};
  for (size_t i = 0; i < count; i++) {
    size_t saved = ms_schema_push_index(schema, i);
    int v = tls_version_index(schema, names[i]);
    if (v < 0) ok = false;
    if (v >= 0) used[v] = true;
    ms_schema_pop(schema, saved);
  }
  size_t lowest = 0, highest = 0;
  if (ok) {
    while (!used[lowest])
      lowest++;
    for (size_t v = lowest; v < COUNT(tls_versions); v++) {
      if (used[v]) highest = v;
    }
    for (size_t v = lowest; v <= highest; v++) {
      if (!used[v]) {
        ms_schema_error(schema, "leaves out %s between %s and %s; list a contiguous range",
                        tls_versions[v].name, tls_versions[lowest].name,
                        tls_versions[highest].name);
        ok = false;
        break;
      }
    }
  }
  if (!ok) {
    ms_schema_strings_free(names, count);
    return;
  }
  replace_list(&tls->protocols, &tls->protocol_count, names, count);
  tls->settings.min_version = tls_versions[lowest].version;
  tls->settings.max_version = tls_versions[highest].version;
}

static void parse_curves(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field) {
  ms_cluster_tls_config *tls = field;
  char **curves;
  size_t count;
  if (!ms_schema_parse_string_list(schema, value, &curves, &count)) return;
  bool ok = count > 0;
  if (count == 0) {
    ms_schema_error(schema,
                    "must list at least one curve, like [\"X25519\", \"P-256\"]; leave it out "
                    "for BoringSSL's default");
  }
  size_t joined_size = 1;
  for (size_t i = 0; i < count; i++) {
    if (strchr(curves[i], ':') != NULL) {
      size_t saved = ms_schema_push_index(schema, i);
      ms_schema_error(schema, "\"%s\": give one curve per entry, like [\"X25519\", \"P-256\"]",
                      curves[i]);
      ms_schema_pop(schema, saved);
      ok = false;
    }
    joined_size += strlen(curves[i]) + 1;
  }
  char *joined = ok ? malloc(joined_size) : NULL;
  if (ok && joined == NULL) schema->out_of_memory = true;
  if (joined == NULL) {
    ms_schema_strings_free(curves, count);
    return;
  }
  joined[0] = '\0';
  for (size_t i = 0; i < count; i++) {
    if (i > 0) strcat(joined, ":");
    strcat(joined, curves[i]);
  }
  replace_list(&tls->curves, &tls->curve_count, curves, count);
  replace_string(&tls->settings.curves, joined);
}

/* ALPN goes on the wire as a list of length-prefixed names. */
static void parse_alpn(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                       void *field) {
  ms_cluster_tls_config *tls = field;
  char **names;
  size_t count;
  if (!ms_schema_parse_string_list(schema, value, &names, &count)) return;
  bool ok = true;
  size_t wire_len = 0;
  for (size_t i = 0; i < count; i++) {
    size_t length = strlen(names[i]);
    if (length > 255) {
      size_t saved = ms_schema_push_index(schema, i);
      ms_schema_error(schema, "is %zu bytes long; a protocol name has at most 255", length);
      ms_schema_pop(schema, saved);
      ok = false;
    }
    wire_len += 1 + length;
  }
  uint8_t *wire = ok && wire_len > 0 ? malloc(wire_len) : NULL;
  if (ok && wire_len > 0 && wire == NULL) {
    schema->out_of_memory = true;
    ok = false;
  }
  if (!ok) {
    ms_schema_strings_free(names, count);
    return;
  }
  size_t used = 0;
  for (size_t i = 0; i < count; i++) {
    size_t length = strlen(names[i]);
    wire[used++] = (uint8_t)length;
    memcpy(wire + used, names[i], length);
    used += length;
  }
  replace_list(&tls->alpn, &tls->alpn_count, names, count);
  free((void *)tls->settings.alpn);
  tls->settings.alpn = wire;
  tls->settings.alpn_len = wire_len;
}

#define KEY(name, parse, offset) \
  { name, parse, offset, 0, 0, NULL }
#define TLS_FIELD(member) offsetof(ms_cluster_tls_config, member)

static const ms_schema_key tls_keys[] = {
    KEY("certificate", ms_schema_parse_path, TLS_FIELD(settings.certificate)),
    KEY("private_key", ms_schema_parse_path, TLS_FIELD(settings.private_key)),
    KEY("password_file", ms_schema_parse_path, TLS_FIELD(settings.password_file)),
    KEY("trusted_ca", ms_schema_parse_path, TLS_FIELD(settings.trusted_ca)),
    KEY("verify", ms_schema_parse_bool, TLS_FIELD(settings.verify)),
    {"verify_depth", ms_schema_parse_int, TLS_FIELD(settings.verify_depth), 1, 100, NULL},
    KEY("server_name", parse_server_name, TLS_FIELD(server_name)),
    KEY("send_sni", ms_schema_parse_bool, TLS_FIELD(send_sni)),
    KEY("match_subject_alt_names", parse_match_sans, 0), /* these fill several fields */
    KEY("protocols", parse_protocols, 0),
    KEY("ciphers", parse_ciphers, TLS_FIELD(settings.ciphers)),
    KEY("curves", parse_curves, 0),
    KEY("alpn", parse_alpn, 0),
    KEY("session_reuse", ms_schema_parse_bool, TLS_FIELD(settings.session_reuse)),
    KEY("crl", ms_schema_parse_path, TLS_FIELD(settings.crl)),
    /* The same material given in the file itself instead of paths, as the
     * control plane's SDS gives it (Envoy's inline_string). */
    KEY("certificate_pem", ms_schema_parse_string, TLS_FIELD(settings.certificate_pem)),
    KEY("private_key_pem", ms_schema_parse_string, TLS_FIELD(settings.private_key_pem)),
    KEY("password", ms_schema_parse_string, TLS_FIELD(settings.password)),
    KEY("trusted_ca_pem", ms_schema_parse_string, TLS_FIELD(settings.trusted_ca_pem)),
    KEY("crl_pem", ms_schema_parse_string, TLS_FIELD(settings.crl_pem)),
    /* Secrets the control plane sent (SDS), by name: what the sidecar writes
     * when it renders the control plane's clusters. */
    KEY("certificate_secret", ms_schema_parse_string, TLS_FIELD(certificate_secret)),
    KEY("validation_secret", ms_schema_parse_string, TLS_FIELD(validation_secret)),
};

/* ---- the tls object ------------------------------------------------------- */

void ms_config_tls_init(ms_cluster_tls_config *tls) {
  tls->settings.verify = true;
  tls->settings.verify_depth = 4;
  tls->settings.min_version = TLS1_2_VERSION;
  tls->settings.max_version = TLS1_3_VERSION;
  tls->settings.session_reuse = true;
  tls->send_sni = true;
}

void ms_config_parse_tls(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field) {
  ms_cluster_tls_config *tls = field;
  ms_schema_object(schema, value, tls_keys, COUNT(tls_keys), tls);
  if (!cJSON_IsObject(value)) return;
  /* Presence in the JSON, not the parsed field, so that a key with a bad
   * value is reported once, for its value. */
  bool trusted_ca = has_key(value, "trusted_ca") || has_key(value, "trusted_ca_pem") ||
                    has_key(value, "validation_secret");
  bool certificate_secret = has_key(value, "certificate_secret");
  bool certificate = has_key(value, "certificate") || has_key(value, "certificate_pem");
  bool private_key = has_key(value, "private_key") || has_key(value, "private_key_pem");
  static const char *const by_secret[][2] = {
      {"certificate_secret", "certificate"}, {"certificate_secret", "certificate_pem"},
      {"certificate_secret", "private_key"}, {"certificate_secret", "private_key_pem"},
      {"certificate_secret", "password"},    {"certificate_secret", "password_file"},
      {"validation_secret", "trusted_ca"},   {"validation_secret", "trusted_ca_pem"},
      {"validation_secret", "crl"},          {"validation_secret", "crl_pem"}};
  for (size_t i = 0; i < COUNT(by_secret); i++) {
    if (has_key(value, by_secret[i][0]) && has_key(value, by_secret[i][1]))
      ms_schema_error_at(schema, by_secret[i][1], "set either %s or %s, not both", by_secret[i][0],
                         by_secret[i][1]);
  }
  if (certificate_secret) certificate = private_key = false; /* the secret brings both */
  if (tls->settings.verify && !trusted_ca) {
    ms_schema_error_at(schema, "trusted_ca",
                       "required while verify is on; set it to the CA bundle that signs the "
                       "upstream's certificate, or set verify to false");
  }
  if (certificate && !private_key) {
    ms_schema_error_at(schema, "private_key",
                       "required with certificate; set it to the client certificate's key file");
  }
  if (private_key && !certificate) {
    ms_schema_error_at(schema, "certificate",
                       "required with private_key; set it to the client certificate chain file");
  }
  if ((has_key(value, "password_file") || has_key(value, "password")) && !private_key) {
    ms_schema_error_at(schema, has_key(value, "password") ? "password" : "password_file",
                       "has no effect without private_key; remove it or add the key it decrypts");
  }
  static const char *const pairs[][2] = {{"certificate", "certificate_pem"},
                                         {"private_key", "private_key_pem"},
                                         {"password_file", "password"},
                                         {"trusted_ca", "trusted_ca_pem"},
                                         {"crl", "crl_pem"}};
  for (size_t i = 0; i < COUNT(pairs); i++) {
    if (has_key(value, pairs[i][0]) && has_key(value, pairs[i][1]))
      ms_schema_error_at(schema, pairs[i][1], "set either %s or %s, not both", pairs[i][0],
                         pairs[i][1]);
  }
  if (!tls->settings.verify && tls->match_subject_alt_name_count > 0) {
    ms_schema_error_at(schema, "match_subject_alt_names",
                       "has no effect while verify is off; turn verify on or remove it");
  }
}

void ms_config_tls_finish(ms_schema *schema, ms_cluster_tls_config *tls) {
  if (tls->protocols != NULL) return;
  char **names = calloc(COUNT(allowed_versions), sizeof(*names));
  if (names == NULL) {
    schema->out_of_memory = true;
    return;
  }
  for (size_t i = 0; i < COUNT(allowed_versions); i++) {
    names[i] = ms_schema_strdup(schema, allowed_versions[i]);
  }
  tls->protocols = names;
  tls->protocol_count = COUNT(allowed_versions);
}

void ms_config_tls_cleanup(ms_cluster_tls_config *tls) {
  ms_tls_settings *settings = &tls->settings;
  const char **strings[] = {&settings->certificate,   &settings->private_key,
                            &settings->password_file, &settings->trusted_ca,
                            &settings->crl,           &settings->ciphers,
                            &settings->curves};
  for (size_t i = 0; i < COUNT(strings); i++)
    replace_string(strings[i], NULL);
  /* Key material given in memory is wiped before it is freed. */
  const char **secrets[] = {&settings->private_key_pem, &settings->password};
  for (size_t i = 0; i < COUNT(secrets); i++)
    if (*secrets[i]) OPENSSL_cleanse((void *)*secrets[i], strlen(*secrets[i]));
  const char **material[] = {&settings->certificate_pem, &settings->private_key_pem,
                             &settings->password, &settings->trusted_ca_pem, &settings->crl_pem};
  for (size_t i = 0; i < COUNT(material); i++)
    replace_string(material[i], NULL);
  free((void *)settings->alpn);
  settings->alpn = NULL;
  free(tls->server_name);
  tls->server_name = NULL;
  free(tls->certificate_secret);
  tls->certificate_secret = NULL;
  free(tls->validation_secret);
  tls->validation_secret = NULL;
  replace_list(&tls->match_subject_alt_names, &tls->match_subject_alt_name_count, NULL, 0);
  replace_list(&tls->alpn, &tls->alpn_count, NULL, 0);
  replace_list(&tls->protocols, &tls->protocol_count, NULL, 0);
  replace_list(&tls->curves, &tls->curve_count, NULL, 0);
}
