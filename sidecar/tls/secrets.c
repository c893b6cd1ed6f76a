#include "sidecar/tls/secrets.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "certs/certs.h"

ms_secret_set *ms_secret_set_new(void) {
  return calloc(1, sizeof(ms_secret_set));
}

static void wipe_string(char **text) {
  if (*text) OPENSSL_cleanse(*text, strlen(*text));
  free(*text);
  *text = NULL;
}

/* Key bytes live in secure memory (certs.h: locked, left out of core
 * dumps, wiped when freed). */
static void free_secure(char **text) {
  ms_secure_free(*text);
  *text = NULL;
}

static void secret_cleanup(ms_secret *secret) {
  free(secret->name);
  secret->name = NULL;
  wipe_string(&secret->certificate_pem);
  free_secure(&secret->private_key_pem);
  free_secure(&secret->password);
  wipe_string(&secret->trusted_ca_pem);
  wipe_string(&secret->crl_pem);
}

static int copy_string(const char *from, char **to) {
  *to = NULL;
  return from == NULL || (*to = strdup(from)) != NULL ? 0 : -1;
}

static int copy_secure(const char *from, char **to) {
  *to = NULL;
  return from == NULL || (*to = ms_secure_strdup(from)) != NULL ? 0 : -1;
}

int ms_secret_set_add(ms_secret_set *set, const ms_secret *secret) {
  ms_secret copy;
  memset(&copy, 0, sizeof(copy));
  if (copy_string(secret->name, &copy.name) != 0 ||
      copy_string(secret->certificate_pem, &copy.certificate_pem) != 0 ||
      copy_secure(secret->private_key_pem, &copy.private_key_pem) != 0 ||
      copy_secure(secret->password, &copy.password) != 0 ||
      copy_string(secret->trusted_ca_pem, &copy.trusted_ca_pem) != 0 ||
      copy_string(secret->crl_pem, &copy.crl_pem) != 0) {
    secret_cleanup(&copy);
    return -1;
  }
  for (size_t i = 0; i < set->count; i++) {
    if (strcmp(set->items[i].name, secret->name) == 0) {
      secret_cleanup(&set->items[i]);
      set->items[i] = copy;
      return 0;
    }
  }
  ms_secret *items = realloc(set->items, (set->count + 1) * sizeof(ms_secret));
  if (items == NULL) {
    secret_cleanup(&copy);
    return -1;
  }
  set->items = items;
  set->items[set->count++] = copy;
  return 0;
}

const ms_secret *ms_secret_set_find(const ms_secret_set *set, const char *name) {
  for (size_t i = 0; set && i < set->count; i++)
    if (strcmp(set->items[i].name, name) == 0) return &set->items[i];
  return NULL;
}

void ms_secret_set_free(ms_secret_set *set) {
  if (set == NULL) return;
  for (size_t i = 0; i < set->count; i++)
    secret_cleanup(&set->items[i]);
  free(set->items);
  free(set);
}
