/* secrets.h: the TLS material the control plane sent by SDS, by name.
 *
 * A cluster names the secrets it uses (ms_cluster_tls_config's
 * certificate_secret and validation_secret); the server looks them up in its
 * current set whenever it builds contexts. Keeping the material out of the
 * configuration is what makes a rotation cheap: a new certificate is a new
 * set, one context built per distinct use, and no configuration to parse
 * again however many clusters share it.
 *
 * A set is immutable once built and owned by one holder (the server, or the
 * code building it); main thread only. Key bytes (private_key_pem,
 * password) are kept in secure memory (ms_secure_strdup: locked in RAM, left
 * out of core dumps) and wiped when freed. */
#ifndef MS_SECRETS_H
#define MS_SECRETS_H

#include <stddef.h>

/* One secret: a client certificate with its key, or a trust bundle. */
typedef struct ms_secret {
  char *name;
  char *certificate_pem; /* with private_key_pem: a tls_certificate secret */
  char *private_key_pem;
  char *password;       /* NULL: the key is not encrypted */
  char *trusted_ca_pem; /* a validation_context secret */
  char *crl_pem;        /* NULL: no revocation list */
} ms_secret;

typedef struct ms_secret_set {
  ms_secret *items;
  size_t count;
} ms_secret_set;

/* ms_secret_set_new returns an empty set, or NULL when memory ran out. */
ms_secret_set *ms_secret_set_new(void);

/* ms_secret_set_add copies `secret` (every string) into the set, replacing
 * one of the same name. Returns 0, or -1 when memory ran out. */
int ms_secret_set_add(ms_secret_set *set, const ms_secret *secret);

/* ms_secret_set_find returns the secret called `name`, or NULL. Accepts a
 * NULL set. */
const ms_secret *ms_secret_set_find(const ms_secret_set *set, const char *name);

/* ms_secret_set_free wipes and frees the set. Accepts NULL. */
void ms_secret_set_free(ms_secret_set *set);

#endif
