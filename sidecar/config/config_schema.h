/* config_schema.h (private to config.c): walking a JSON document against
 * tables of known keys, HAProxy style, and collecting every problem with
 * its JSON path.
 *
 * Nothing here knows about ms_config. An object is described by a table of
 * ms_schema_key {name, parser, offset, ...}; ms_schema_object calls each
 * key's parser with a pointer to the field it fills, reports unknown keys
 * (with the nearest known key as a suggestion), duplicate keys and missing
 * required keys. A null value means the same as leaving the key out, so the
 * default stays. Parsers report through ms_schema_error, which prefixes the
 * current path ("clusters[0].tls.verify_depth"). */
#ifndef MS_CONFIG_SCHEMA_H
#define MS_CONFIG_SCHEMA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "sidecar/config/config.h"

typedef struct ms_schema {
  ms_config_errors *errors;
  const char *directory; /* relative paths resolve here */
  bool out_of_memory;    /* an allocation failed; reported once at the end */
  char path[512];        /* JSON path of the value being parsed */
  size_t path_len;
} ms_schema;

typedef struct ms_schema_key ms_schema_key;

/* A parser reads `value` (never NULL, never JSON null) into `field`, which
 * points `key->offset` bytes into the parsed object. It reports problems
 * with ms_schema_error and leaves `field` as it was on failure. */
typedef void (*ms_schema_parser)(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                                 void *field);

struct ms_schema_key {
  const char *name;
  ms_schema_parser parse;
  size_t offset;        /* of the field within the object being filled */
  int64_t min, max;     /* for integer keys */
  const char *required; /* NULL: optional; else the hint after "required; " */
};

/* ms_schema_object checks that `value` is an object, then parses each of
 * its members with the parser `keys` names for it into `target`. */
void ms_schema_object(ms_schema *schema, const cJSON *value, const ms_schema_key *keys,
                      size_t key_count, void *target);

/* ms_schema_array checks that `value` is an array, allocates
 * `element_size` bytes per element into *out_elements and *out_count
 * (zeroed, then `init` for each), and calls `parse` for each element with
 * the path at "name[i]". An empty array yields NULL and 0. */
void ms_schema_array(ms_schema *schema, const cJSON *value, size_t element_size,
                     void (*init)(void *element),
                     void (*parse)(ms_schema *schema, const cJSON *value, void *element),
                     void **out_elements, size_t *out_count);

/* ms_schema_error records "<current path>: <message>". */
void ms_schema_error(ms_schema *schema, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* ms_schema_error_at records "<current path>.<key>: <message>". */
void ms_schema_error_at(ms_schema *schema, const char *key, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* ms_schema_error_unknown records "<current path>: <problem>; did you mean
 * \"x\"?" when ms_schema_nearest finds a candidate for `word`, else
 * "<problem>; expected one of: a, b, c". */
void ms_schema_error_unknown(ms_schema *schema, const char *problem, const char *word,
                             const char *const *candidates, size_t count);

/* ms_schema_add_line appends one finished line to `errors`, control
 * characters written as \xNN (one problem, one line). Returns 0, or
 * -1 when memory ran out. */
int ms_schema_add_line(ms_config_errors *errors, const char *line);

/* Path bookkeeping: push ".name" or "[index]", pop back to a saved length. */
size_t ms_schema_push_key(ms_schema *schema, const char *name);
size_t ms_schema_push_index(ms_schema *schema, size_t index);
void ms_schema_pop(ms_schema *schema, size_t saved_len);

/* ms_schema_type_name returns "a string", "an object", "null", ... */
const char *ms_schema_type_name(const cJSON *value);

/* Typed readers: each returns true and sets *out, or reports why not. */
bool ms_schema_read_integer(ms_schema *schema, const cJSON *value, int64_t min, int64_t max,
                            int64_t *out);
bool ms_schema_read_string(ms_schema *schema, const cJSON *value, const char **out);

/* ms_schema_strdup copies `text`, noting a failed allocation. */
char *ms_schema_strdup(ms_schema *schema, const char *text);

/* Generic parsers for ms_schema_key tables. */
void ms_schema_parse_uint32(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field); /* uint32_t, within key->min..max */
void ms_schema_parse_int(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field); /* int, within key->min..max */
void ms_schema_parse_bool(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                          void *field); /* bool */
void ms_schema_parse_string(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field); /* char *, not empty; replaces (frees) the old value */
void ms_schema_parse_path(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                          void *field); /* char *: a file made absolute against the config's
                                           folder, never opened here; replaces the old value */

/* ms_schema_parse_string_list reads an array of non-empty strings into a
 * newly allocated array. Returns true and sets the outputs (NULL, 0 for an
 * empty array), or reports why not. */
bool ms_schema_parse_string_list(ms_schema *schema, const cJSON *value, char ***out_strings,
                                 size_t *out_count);
void ms_schema_strings_free(char **strings, size_t count);

/* ms_schema_nearest returns the candidate nearest to `word` within edit
 * distance 2 (a transposition counts as one edit), or NULL when there is
 * none or two are equally near. */
const char *ms_schema_nearest(const char *word, const char *const *candidates, size_t count);

/* ms_schema_path_join returns `path` made absolute against `directory`
 * (itself absolute), with "." segments and repeated slashes removed; ".."
 * stays as written so the kernel resolves it through symbolic links.
 * Caller frees; NULL when memory ran out. */
char *ms_schema_path_join(const char *directory, const char *path);

#endif
