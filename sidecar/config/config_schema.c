/* config_schema.c: see config_schema.h. */
#include "sidecar/config/config_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tables are small; a fixed bound keeps ms_schema_object allocation-free. */
#define MAX_KEYS 32
/* Keys longer than this get no "did you mean". */
#define MAX_WORD 64

int ms_schema_add_line(ms_config_errors *errors, const char *line) {
  /* A key or value from the file may hold control characters: each becomes
   * \xNN, so that one problem is always one line (in the log too). */
  size_t len = 0;
  for (const unsigned char *c = (const unsigned char *)line; *c != '\0'; c++)
    len += *c < 0x20 || *c == 0x7f ? 4 : 1;
  char *copy = malloc(len + 1);
  if (copy == NULL) return -1;
  char *out = copy;
  for (const unsigned char *c = (const unsigned char *)line; *c != '\0'; c++) {
    if (*c < 0x20 || *c == 0x7f)
      out += sprintf(out, "\\x%02x", *c);
    else
      *out++ = (char)*c;
  }
  *out = '\0';
  char **lines = realloc(errors->lines, (errors->count + 1) * sizeof(*lines));
  if (lines == NULL) {
    free(copy);
    return -1;
  }
  lines[errors->count++] = copy;
  errors->lines = lines;
  return 0;
}

static void add_error(ms_schema *schema, const char *path, const char *key, const char *format,
                      va_list args) {
  char message[768];
  vsnprintf(message, sizeof(message), format, args);
  char line[1400];
  const char *dot = path[0] != '\0' && key != NULL ? "." : "";
  if (path[0] == '\0' && key == NULL) {
    snprintf(line, sizeof(line), "%s", message);
  } else {
    snprintf(line, sizeof(line), "%s%s%s: %s", path, dot, key != NULL ? key : "", message);
  }
  if (ms_schema_add_line(schema->errors, line) != 0) schema->out_of_memory = true;
}

void ms_schema_error(ms_schema *schema, const char *format, ...) {
  va_list args;
  va_start(args, format);
  add_error(schema, schema->path, NULL, format, args);
  va_end(args);
}

void ms_schema_error_at(ms_schema *schema, const char *key, const char *format, ...) {
  va_list args;
  va_start(args, format);
  add_error(schema, schema->path, key, format, args);
  va_end(args);
}

static size_t push(ms_schema *schema, const char *format, const char *name, size_t index) {
  size_t saved = schema->path_len;
  size_t room = sizeof(schema->path) - saved;
  int n = name != NULL ? snprintf(schema->path + saved, room, format, name)
                       : snprintf(schema->path + saved, room, format, index);
  if (n < 0) n = 0;
  schema->path_len = (size_t)n < room ? saved + (size_t)n : sizeof(schema->path) - 1;
  return saved;
}

size_t ms_schema_push_key(ms_schema *schema, const char *name) {
  return push(schema, schema->path_len == 0 ? "%s" : ".%s", name, 0);
}

size_t ms_schema_push_index(ms_schema *schema, size_t index) {
  return push(schema, "[%zu]", NULL, index);
}

void ms_schema_pop(ms_schema *schema, size_t saved_len) {
  schema->path_len = saved_len;
  schema->path[saved_len] = '\0';
}

const char *ms_schema_type_name(const cJSON *value) {
  if (cJSON_IsBool(value)) return "a boolean";
  if (cJSON_IsNull(value)) return "null";
  if (cJSON_IsNumber(value)) return "a number";
  if (cJSON_IsString(value)) return "a string";
  if (cJSON_IsArray(value)) return "an array";
  if (cJSON_IsObject(value)) return "an object";
  return "an unknown value";
}

/* Optimal string alignment distance: Levenshtein plus adjacent swaps. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  size_t d[MAX_WORD + 1][MAX_WORD + 1];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= la; i++) {
    for (size_t j = 1; j <= lb; j++) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best) {
        best = d[i - 2][j - 2] + 1;
      }
      d[i][j] = best;
    }
  }
  return d[la][lb];
}

const char *ms_schema_nearest(const char *word, const char *const *candidates, size_t count) {
  if (strlen(word) > MAX_WORD) return NULL;
  const char *nearest = NULL;
  size_t nearest_distance = 3;
  bool tie = false; /* two equally near candidates: suggesting one would mislead */
  for (size_t i = 0; i < count; i++) {
    if (strlen(candidates[i]) > MAX_WORD) continue;
    size_t distance = edit_distance(word, candidates[i]);
    if (distance < nearest_distance) {
      nearest = candidates[i];
      nearest_distance = distance;
      tie = false;
    } else if (distance == nearest_distance) {
      tie = true;
    }
  }
  return tie ? NULL : nearest;
}

void ms_schema_error_unknown(ms_schema *schema, const char *problem, const char *word,
                             const char *const *candidates, size_t count) {
  const char *nearest = ms_schema_nearest(word, candidates, count);
  if (nearest != NULL) {
    ms_schema_error(schema, "%s; did you mean \"%s\"?", problem, nearest);
    return;
  }
  char list[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < count && used < sizeof(list); i++) {
    int n = snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? ", " : "", candidates[i]);
    if (n < 0) break;
    used += (size_t)n;
  }
  ms_schema_error(schema, "%s; expected one of: %s", problem, list);
}

static const ms_schema_key *find_key(const ms_schema_key *keys, size_t count, const char *name) {
  for (size_t i = 0; i < count; i++) {
    if (strcmp(keys[i].name, name) == 0) return &keys[i];
  }
  return NULL;
}

void ms_schema_object(ms_schema *schema, const cJSON *value, const ms_schema_key *keys,
                      size_t key_count, void *target) {
  if (!cJSON_IsObject(value)) {
    ms_schema_error(schema, "expected an object, got %s", ms_schema_type_name(value));
    return;
  }
  if (key_count > MAX_KEYS) abort(); /* a table too big for `seen`: a programming error */
  bool seen[MAX_KEYS] = {false};
  bool present[MAX_KEYS] = {false};
  for (const cJSON *member = value->child; member != NULL; member = member->next) {
    size_t saved = ms_schema_push_key(schema, member->string);
    const ms_schema_key *key = find_key(keys, key_count, member->string);
    if (key == NULL) {
      const char *names[MAX_KEYS];
      for (size_t i = 0; i < key_count; i++)
        names[i] = keys[i].name;
      ms_schema_error_unknown(schema, "unknown key", member->string, names, key_count);
    } else if (seen[key - keys]) {
      ms_schema_error(schema, "duplicate key; give each key once");
    } else {
      seen[key - keys] = true;
      if (!cJSON_IsNull(member)) {
        present[key - keys] = true;
        key->parse(schema, member, key, (char *)target + key->offset);
      }
    }
    ms_schema_pop(schema, saved);
  }
  for (size_t i = 0; i < key_count; i++) {
    if (keys[i].required != NULL && !present[i]) {
      ms_schema_error_at(schema, keys[i].name, "required; %s", keys[i].required);
    }
  }
}

void ms_schema_array(ms_schema *schema, const cJSON *value, size_t element_size,
                     void (*init)(void *element),
                     void (*parse)(ms_schema *schema, const cJSON *value, void *element),
                     void **out_elements, size_t *out_count) {
  if (!cJSON_IsArray(value)) {
    ms_schema_error(schema, "expected an array, got %s", ms_schema_type_name(value));
    return;
  }
  size_t count = (size_t)cJSON_GetArraySize(value);
  if (count == 0) {
    *out_elements = NULL;
    *out_count = 0;
    return;
  }
  char *elements = calloc(count, element_size);
  if (elements == NULL) {
    schema->out_of_memory = true;
    return;
  }
  for (size_t i = 0; i < count; i++)
    init(elements + i * element_size);
  /* Published before parsing, so whatever the elements hold gets freed. */
  *out_elements = elements;
  *out_count = count;
  size_t i = 0;
  for (const cJSON *child = value->child; child != NULL; child = child->next, i++) {
    size_t saved = ms_schema_push_index(schema, i);
    parse(schema, child, elements + i * element_size);
    ms_schema_pop(schema, saved);
  }
}

bool ms_schema_read_integer(ms_schema *schema, const cJSON *value, int64_t min, int64_t max,
                            int64_t *out) {
  const char *expected = min >= 0 ? "a non-negative integer" : "an integer";
  if (!cJSON_IsNumber(value)) {
    ms_schema_error(schema, "expected %s, got %s", expected, ms_schema_type_name(value));
    return false;
  }
  double number = value->valuedouble;
  /* The bounds come first so that the cast below is defined. */
  if (!(number > -9.0e15 && number < 9.0e15) || number != (double)(int64_t)number) {
    ms_schema_error(schema, "expected %s, got %g", expected, number);
    return false;
  }
  int64_t integer = (int64_t)number;
  if (integer < 0 && min >= 0) {
    ms_schema_error(schema, "expected %s, got %lld", expected, (long long)integer);
    return false;
  }
  if (integer < min || integer > max) {
    if (max >= UINT32_MAX) {
      ms_schema_error(schema, "must be at least %lld, got %lld", (long long)min,
                      (long long)integer);
    } else {
      ms_schema_error(schema, "must be between %lld and %lld, got %lld", (long long)min,
                      (long long)max, (long long)integer);
    }
    return false;
  }
  *out = integer;
  return true;
}

bool ms_schema_read_string(ms_schema *schema, const cJSON *value, const char **out) {
  if (!cJSON_IsString(value) || value->valuestring == NULL) {
    ms_schema_error(schema, "expected a string, got %s", ms_schema_type_name(value));
    return false;
  }
  if (value->valuestring[0] == '\0') {
    ms_schema_error(schema, "must not be empty");
    return false;
  }
  *out = value->valuestring;
  return true;
}

char *ms_schema_strdup(ms_schema *schema, const char *text) {
  char *copy = strdup(text);
  if (copy == NULL) schema->out_of_memory = true;
  return copy;
}

void ms_schema_parse_uint32(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field) {
  int64_t integer;
  if (ms_schema_read_integer(schema, value, key->min, key->max, &integer)) {
    *(uint32_t *)field = (uint32_t)integer;
  }
}

void ms_schema_parse_int(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                         void *field) {
  int64_t integer;
  if (ms_schema_read_integer(schema, value, key->min, key->max, &integer)) {
    *(int *)field = (int)integer;
  }
}

void ms_schema_parse_bool(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                          void *field) {
  if (!cJSON_IsBool(value)) {
    ms_schema_error(schema, "expected true or false, got %s", ms_schema_type_name(value));
    return;
  }
  *(bool *)field = cJSON_IsTrue(value);
}

void ms_schema_parse_string(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                            void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  char *copy = ms_schema_strdup(schema, text);
  if (copy == NULL) return;
  free(*(char **)field);
  *(char **)field = copy;
}

void ms_schema_strings_free(char **strings, size_t count) {
  for (size_t i = 0; i < count; i++)
    free(strings[i]);
  free(strings);
}

bool ms_schema_parse_string_list(ms_schema *schema, const cJSON *value, char ***out_strings,
                                 size_t *out_count) {
  if (!cJSON_IsArray(value)) {
    ms_schema_error(schema, "expected an array of strings, got %s", ms_schema_type_name(value));
    return false;
  }
  size_t count = (size_t)cJSON_GetArraySize(value);
  char **strings = count > 0 ? calloc(count, sizeof(*strings)) : NULL;
  if (count > 0 && strings == NULL) {
    schema->out_of_memory = true;
    return false;
  }
  bool ok = true;
  size_t i = 0;
  for (const cJSON *child = value->child; child != NULL; child = child->next, i++) {
    size_t saved = ms_schema_push_index(schema, i);
    const char *text;
    if (ms_schema_read_string(schema, child, &text)) {
      strings[i] = ms_schema_strdup(schema, text);
      if (strings[i] == NULL) ok = false;
    } else {
      ok = false;
    }
    ms_schema_pop(schema, saved);
  }
  if (!ok) {
    ms_schema_strings_free(strings, count);
    return false;
  }
  *out_strings = strings;
  *out_count = count;
  return true;
}

char *ms_schema_path_join(const char *directory, const char *path) {
  size_t size = strlen(directory) + strlen(path) + 3;
  char *joined = malloc(size);
  char *result = malloc(size);
  if (joined == NULL || result == NULL) {
    free(joined);
    free(result);
    return NULL;
  }
  snprintf(joined, size, "%s/%s", path[0] == '/' ? "" : directory, path);
  size_t used = 0;
  const char *p = joined;
  while (*p != '\0') {
    while (*p == '/')
      p++;
    const char *segment = p;
    while (*p != '\0' && *p != '/')
      p++;
    size_t length = (size_t)(p - segment);
    if (length == 0 || (length == 1 && segment[0] == '.')) continue;
    result[used++] = '/';
    memcpy(result + used, segment, length);
    used += length;
  }
  if (used == 0) result[used++] = '/';
  result[used] = '\0';
  free(joined);
  return result;
}

void ms_schema_parse_path(ms_schema *schema, const cJSON *value, const ms_schema_key *key,
                          void *field) {
  const char *text;
  if (!ms_schema_read_string(schema, value, &text)) return;
  char *path = ms_schema_path_join(schema->directory, text);
  if (path == NULL) {
    schema->out_of_memory = true;
    return;
  }
  char **target = field;
  free(*target);
  *target = path;
}
