/* manifest.h: Kubernetes manifests as the inject command reads and writes
 * them: a stream of YAML documents (libyaml) or of JSON objects (cJSON),
 * each document a cJSON object, written back in the format it came in.
 *
 * YAML is read as Kubernetes' own tools read it (sigs.k8s.io/yaml, YAML
 * 1.1): plain scalars resolve to null, booleans (true/yes/on and their
 * spellings), integers (decimal, 0x, 0o and leading-0 octal, 0b, with
 * underscores) and floats; quoted scalars are strings; anchors and aliases
 * are expanded. Integers are kept as their decimal text (cJSON raw), so no
 * digit is lost. Comments and the original layout are not kept.
 *
 * Errors: 0 or -1 with a sentence in `err` (docs/architecture.md,
 * "Errors"), naming the line and column for YAML and JSON syntax. */
#ifndef MS_MANIFEST_H
#define MS_MANIFEST_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef enum ms_manifest_format { MS_MANIFEST_YAML, MS_MANIFEST_JSON } ms_manifest_format;

/* Refused rather than expanded: more nodes in one document (aliases
 * counted as the nodes they copy) or deeper nesting. */
#define MS_MANIFEST_MAX_NODES 1000000
#define MS_MANIFEST_MAX_DEPTH 200

/* The documents of a stream, in order; empty documents are left out. */
typedef struct ms_manifest {
  ms_manifest_format format;
  cJSON **documents; /* each a JSON object, owned */
  size_t *lines;     /* the line (from 1) where each document starts */
  size_t count;
} ms_manifest;

/* ms_manifest_parse reads `len` bytes of `text`: JSON when the first byte
 * that is not white space is '{' or '[', YAML otherwise. On success returns
 * 0 and fills *out (the caller frees it with ms_manifest_cleanup); on failure
 * returns -1 with a sentence naming the document and line in `err`, and *out
 * holds nothing. A document that is not an object, a key given twice in
 * one object, a merge key (<<), a value JSON cannot hold (.inf, .nan) are
 * failures. */
int ms_manifest_parse(const char *text, size_t len, ms_manifest *out, char *err, size_t err_len);

/* ms_manifest_write returns the documents as text in out->format (YAML
 * documents separated by "---", JSON objects one after the other), a new
 * NUL-terminated string the caller frees, its length in *out_len. NULL when
 * memory runs out or the emitter fails, with a sentence in `err`. */
char *ms_manifest_write(const ms_manifest *manifest, size_t *out_len, char *err, size_t err_len);

/* ms_manifest_cleanup frees the documents; `manifest` may be reused. */
void ms_manifest_cleanup(ms_manifest *manifest);

#endif
