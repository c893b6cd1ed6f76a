/* name_index.h: a hash index from names to positions, for the checks and
 * lookups that would otherwise compare every name with every other (10,000
 * clusters from a control plane make 50 million comparisons of that kind).
 * The names are borrowed: they must outlive the index. */
#ifndef MS_NAME_INDEX_H
#define MS_NAME_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define MS_NAME_INDEX_NONE SIZE_MAX

typedef struct ms_name_index {
  const char **names; /* per slot; NULL: empty */
  size_t *values;
  size_t size; /* a power of two, at least twice the names held */
} ms_name_index;

/* ms_name_index_init makes room for `capacity` names. Returns 0, or -1 when
 * memory ran out (the index is then empty and safe to clean up). */
int ms_name_index_init(ms_name_index *index, size_t capacity);

/* ms_name_index_put adds `name` with `value` and returns MS_NAME_INDEX_NONE,
 * or, when the name is already there, returns its value and changes
 * nothing. Never more names than the capacity. */
size_t ms_name_index_put(ms_name_index *index, const char *name, size_t value);

/* ms_name_index_get returns the value of `name`, or MS_NAME_INDEX_NONE. */
size_t ms_name_index_get(const ms_name_index *index, const char *name);

void ms_name_index_cleanup(ms_name_index *index);

#endif
