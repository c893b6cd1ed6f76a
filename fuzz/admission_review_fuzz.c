/* admission_review_fuzz.c: the body of a POST to xds-server's admission
 * webhook as xds_webhook_review (xds-server/server_review.c) answers it,
 * without sockets: the AdmissionReview parsed, the pod injected or
 * validated by inject/'s one code path, the response built.
 *
 * Properties beyond memory safety: a bad request is a 400 with a sentence;
 * anything else is a 200 whose body is a v1 AdmissionReview response with a
 * boolean "allowed" and a uid; a denial has a 403 status and a message;
 * a patch decodes (base64) to a JSON array that applies to the pod it was
 * made for (ms_inject_apply), and the patched pod is then left alone.
 *
 * Input: a byte choosing the path (/inject, /inject-namespace, /validate),
 * then the body. */
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/base64.h>

#include "fuzz/fuzz_util.h"
#include "inject/inject.h"
#include "xds-server/server_internal.h"

/* check_patch: the patch applies to request.object, and the patched pod
 * needs no patch. */
static void check_patch(const ms_inject_settings *settings, xds_webhook_path path,
                        const uint8_t *body, size_t body_len, const char *patch_base64) {
  size_t max = 0;
  FUZZ_CHECK(EVP_DecodedLength(&max, strlen(patch_base64)));
  uint8_t *decoded = malloc(max + 1);
  size_t len = 0;
  FUZZ_CHECK(decoded != NULL);
  FUZZ_CHECK(
      EVP_DecodeBase64(decoded, &len, max, (const uint8_t *)patch_base64, strlen(patch_base64)));
  cJSON *patch = cJSON_ParseWithLength((const char *)decoded, len);
  free(decoded);
  FUZZ_CHECK(cJSON_IsArray(patch) && cJSON_GetArraySize(patch) > 0);
  cJSON *root = cJSON_ParseWithLength((const char *)body, body_len);
  cJSON *request = cJSON_GetObjectItemCaseSensitive(root, "request");
  cJSON *object = cJSON_GetObjectItemCaseSensitive(request, "object");
  cJSON *patched = NULL;
  char err[512];
  FUZZ_CHECK(ms_inject_apply(object, patch, &patched, err, sizeof(err)) == 0);
  /* The patched pod, reviewed again, is left as it is. */
  cJSON_ReplaceItemInObjectCaseSensitive(request, "object", patched);
  char *again = cJSON_PrintUnformatted(root);
  xds_review second;
  if (again != NULL && xds_webhook_review(settings, path, again, strlen(again), &second) == 0) {
    FUZZ_CHECK(second.outcome == XDS_REVIEW_ALREADY_INJECTED);
    xds_review_cleanup(&second);
  }
  free(again);
  cJSON_Delete(root);
  cJSON_Delete(patch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size};
  xds_webhook_path path = (xds_webhook_path)(fuzz_take_byte(&in) % 3);
  ms_inject_settings settings;
  ms_inject_settings_init(&settings);
  xds_review review;
  if (xds_webhook_review(&settings, path, (const char *)in.data, in.len, &review) != 0)
    return 0; /* out of memory */
  FUZZ_CHECK(review.body != NULL && strlen(review.body) == review.body_len);
  if (review.outcome == XDS_REVIEW_BAD_REQUEST) {
    FUZZ_CHECK(review.http_status == 400 && review.reason[0] != '\0');
    xds_review_cleanup(&review);
    return 0;
  }
  FUZZ_CHECK(review.http_status == 200);
  cJSON *answer = cJSON_Parse(review.body);
  FUZZ_CHECK(answer != NULL);
  cJSON *response = cJSON_GetObjectItemCaseSensitive(answer, "response");
  cJSON *allowed = cJSON_GetObjectItemCaseSensitive(response, "allowed");
  FUZZ_CHECK(cJSON_IsBool(allowed));
  FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(response, "uid")));
  cJSON *patch = cJSON_GetObjectItemCaseSensitive(response, "patch");
  if (cJSON_IsFalse(allowed)) {
    cJSON *status = cJSON_GetObjectItemCaseSensitive(response, "status");
    FUZZ_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(status, "code")) == 403);
    FUZZ_CHECK(review.reason[0] != '\0' && patch == NULL);
  }
  FUZZ_CHECK((patch != NULL) == (review.outcome == XDS_REVIEW_INJECTED));
  if (patch != NULL) {
    FUZZ_CHECK(cJSON_IsString(patch));
    check_patch(&settings, path, in.data, in.len, patch->valuestring);
  }
  cJSON_Delete(answer);
  xds_review_cleanup(&review);
  return 0;
}
