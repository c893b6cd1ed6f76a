#include "common/name_index.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_name(const char *name) {
  uint64_t hash = 0xcbf29ce484222325ULL; /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *)name; *c; c++)
    hash = (hash ^ *c) * 0x100000001b3ULL;
  return hash;
}

int ms_name_index_init(ms_name_index *index, size_t capacity) {
  size_t size = 16;
  while (size < 2 * capacity + 2)
    size *= 2;
  index->names = calloc(size, sizeof(char *));
  index->values = calloc(size, sizeof(size_t));
  index->size = size;
  if (index->names && index->values) return 0;
  ms_name_index_cleanup(index);
  return -1;
}

static size_t find_slot(const ms_name_index *index, const char *name) {
  size_t mask = index->size - 1;
  size_t slot = (size_t)hash_name(name) & mask;
  while (index->names[slot] && strcmp(index->names[slot], name) != 0)
    slot = (slot + 1) & mask;
  return slot;
}

size_t ms_name_index_put(ms_name_index *index, const char *name, size_t value) {
  if (index->size == 0) return MS_NAME_INDEX_NONE;
  size_t slot = find_slot(index, name);
  if (index->names[slot]) return index->values[slot];
  index->names[slot] = name;
  index->values[slot] = value;
  return MS_NAME_INDEX_NONE;
}

size_t ms_name_index_get(const ms_name_index *index, const char *name) {
  if (index->size == 0) return MS_NAME_INDEX_NONE;
  size_t slot = find_slot(index, name);
  return index->names[slot] ? index->values[slot] : MS_NAME_INDEX_NONE;
}

void ms_name_index_cleanup(ms_name_index *index) {
  free(index->names);
  free(index->values);
  memset(index, 0, sizeof(*index));
}
