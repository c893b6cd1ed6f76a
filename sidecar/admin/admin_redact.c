/* admin_redact.c: keeps private keys out of /config_dump. */
#include <errno.h>
#include <string.h>

#include "sidecar/admin/admin_json.h"

#define REDACTED "[redacted]"

/* Members whose value is secret, whatever its type (a path, or inline data). */
static const char *const secret_keys[] = {"private_key", "private_key_pem", "password",
                                          "password_file"};

static bool is_secret_key(const char *name) {
  if (!name) return false;
  for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++) {
    if (strcmp(name, secret_keys[i]) == 0) return true;
  }
  return false;
}

/* A PEM private key, in any of its labels ("PRIVATE KEY", "EC PRIVATE KEY",
 * "ENCRYPTED PRIVATE KEY", ...), pasted anywhere in the file. */
static bool holds_key_material(const cJSON *item) {
  return cJSON_IsString(item) && item->valuestring && strstr(item->valuestring, "PRIVATE KEY");
}

int ms_admin_redact(cJSON *json) {
  if (!json) return 0;
  for (cJSON *child = json->child; child; child = child->next) {
    if ((is_secret_key(child->string) && !cJSON_IsNull(child)) || holds_key_material(child)) {
      cJSON *replacement = cJSON_CreateString(REDACTED);
      if (!replacement) return -ENOMEM;
      /* The member's name moves to the replacement (both allocated by cJSON's
       * hooks); cJSON_ReplaceItemViaPointer then deletes the old value. */
      replacement->string = child->string;
      child->string = NULL;
      cJSON_ReplaceItemViaPointer(json, child, replacement);
      child = replacement;
    } else if (cJSON_IsObject(child) || cJSON_IsArray(child)) {
      int rc = ms_admin_redact(child);
      if (rc != 0) return rc;
    }
  }
  return 0;
}
