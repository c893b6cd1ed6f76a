/* grpc_framing.c: gRPC's length-prefixed messages (a compressed-flag byte and
 * a 4-byte big-endian length) in both directions. */
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "xds/grpc/grpc_internal.h"

/* ---- receiving ------------------------------------------------------------ */

static uint32_t read_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Checks a complete prefix; returns 0 or an error. */
static int take_prefix(ms_grpc_deframer *deframer, size_t max_message_bytes) {
  if (deframer->prefix[0] != 0) return MS_GRPC_E_COMPRESSED; /* 1, or a flag gRPC does not define */
  deframer->message_len = read_be32(deframer->prefix + 1);
  if (deframer->message_len > max_message_bytes) return MS_GRPC_E_TOO_LARGE;
  return 0;
}

/* Appends to the partial body, growing the buffer with what arrives (a peer
 * announcing a large message and sending nothing costs nothing). */
static int append_body(ms_grpc_deframer *deframer, const uint8_t *data, size_t len) {
  uint32_t need = deframer->message_have + (uint32_t)len;
  if (need > deframer->capacity) {
    uint64_t capacity = deframer->capacity ? deframer->capacity : 1024;
    while (capacity < need)
      capacity *= 2;
    if (capacity > deframer->message_len) capacity = deframer->message_len;
    uint8_t *grown = realloc(deframer->message, (size_t)capacity);
    if (grown == NULL) return UV_ENOMEM;
    if (deframer->accounted != NULL) *deframer->accounted += capacity - deframer->capacity;
    deframer->message = grown;
    deframer->capacity = (uint32_t)capacity;
  }
  memcpy(deframer->message + deframer->message_have, data, len);
  deframer->message_have = need;
  return 0;
}

/* reset_message wipes and frees the partial message (an SDS response to the
 * client carries a private key). */
static void reset_message(ms_grpc_deframer *deframer) {
  if (deframer->accounted != NULL) *deframer->accounted -= deframer->capacity;
  if (deframer->message != NULL) OPENSSL_cleanse(deframer->message, deframer->capacity);
  free(deframer->message);
  deframer->message = NULL;
  deframer->prefix_len = 0;
  deframer->message_len = deframer->message_have = deframer->capacity = 0;
}

int ms_grpc_deframer_feed(ms_grpc_deframer *deframer, const uint8_t *data, size_t len,
                          size_t max_message_bytes, ms_grpc_message_fn on_message, void *arg) {
  while (len > 0) {
    if (deframer->prefix_len < MS_GRPC_PREFIX_LEN) {
      /* The whole message in this chunk: deliver it without copying. */
      if (deframer->prefix_len == 0 && len >= MS_GRPC_PREFIX_LEN) {
        memcpy(deframer->prefix, data, MS_GRPC_PREFIX_LEN);
        int rc = take_prefix(deframer, max_message_bytes);
        if (rc != 0) return rc;
        if (len - MS_GRPC_PREFIX_LEN >= deframer->message_len) {
          size_t body = deframer->message_len;
          deframer->message_len = 0;
          if (!on_message(arg, data + MS_GRPC_PREFIX_LEN, body)) return 1;
          data += MS_GRPC_PREFIX_LEN + body;
          len -= MS_GRPC_PREFIX_LEN + body;
          continue;
        }
        deframer->prefix_len = MS_GRPC_PREFIX_LEN;
        data += MS_GRPC_PREFIX_LEN;
        len -= MS_GRPC_PREFIX_LEN;
      } else {
        size_t take = MS_GRPC_PREFIX_LEN - deframer->prefix_len;
        if (take > len) take = len;
        memcpy(deframer->prefix + deframer->prefix_len, data, take);
        deframer->prefix_len += (uint8_t)take;
        data += take;
        len -= take;
        if (deframer->prefix_len < MS_GRPC_PREFIX_LEN) return 0;
        int rc = take_prefix(deframer, max_message_bytes);
        if (rc != 0) return rc;
      }
    }
    size_t take = deframer->message_len - deframer->message_have;
    if (take > len) take = len;
    if (take > 0) {
      int rc = append_body(deframer, data, take);
      if (rc != 0) return rc;
      data += take;
      len -= take;
    }
    if (deframer->message_have == deframer->message_len) {
      uint8_t *message = deframer->message;
      size_t message_len = deframer->message_len;
      if (deframer->accounted != NULL) *deframer->accounted -= deframer->capacity;
      deframer->message = NULL;
      deframer->capacity = 0;
      reset_message(deframer);
      bool go_on = on_message(arg, message != NULL ? message : (const uint8_t *)"", message_len);
      if (message != NULL) OPENSSL_cleanse(message, message_len);
      free(message);
      if (!go_on) return 1;
    }
  }
  return 0;
}

bool ms_grpc_deframer_partial(const ms_grpc_deframer *deframer) {
  return deframer->prefix_len > 0;
}

void ms_grpc_deframer_cleanup(ms_grpc_deframer *deframer) {
  reset_message(deframer);
}

/* ---- sending -------------------------------------------------------------- */

/* frame_free wipes a frame before freeing it: an SDS response carries a
 * private key. It costs a memset of what was sent, small beside the TLS
 * encryption of the same bytes. */
static void frame_free(ms_grpc_frame *frame) {
  OPENSSL_cleanse(frame->data, frame->len);
  free(frame);
}

int ms_grpc_send_queue_push(ms_grpc_send_queue *queue, const uint8_t *bytes, size_t len) {
  if (len > UINT32_MAX) return UV_E2BIG;
  ms_grpc_frame *frame = malloc(sizeof(*frame) + MS_GRPC_PREFIX_LEN + len);
  if (frame == NULL) return UV_ENOMEM;
  frame->next = NULL;
  frame->len = MS_GRPC_PREFIX_LEN + len;
  frame->offset = 0;
  frame->data[0] = 0; /* not compressed */
  frame->data[1] = (uint8_t)(len >> 24);
  frame->data[2] = (uint8_t)(len >> 16);
  frame->data[3] = (uint8_t)(len >> 8);
  frame->data[4] = (uint8_t)len;
  if (len > 0) memcpy(frame->data + MS_GRPC_PREFIX_LEN, bytes, len);
  if (queue->tail)
    queue->tail->next = frame;
  else
    queue->head = frame;
  queue->tail = frame;
  queue->bytes += frame->len;
  if (queue->accounted != NULL) *queue->accounted += frame->len;
  return 0;
}

ssize_t ms_grpc_send_queue_read(ms_grpc_send_queue *queue, uint8_t *buf, size_t len, bool ended,
                                uint32_t *data_flags) {
  size_t copied = 0;
  while (copied < len && queue->head != NULL) {
    ms_grpc_frame *frame = queue->head;
    size_t take = frame->len - frame->offset;
    if (take > len - copied) take = len - copied;
    memcpy(buf + copied, frame->data + frame->offset, take);
    frame->offset += take;
    copied += take;
    queue->bytes -= take;
    if (queue->accounted != NULL) *queue->accounted -= take;
    if (frame->offset == frame->len) {
      queue->head = frame->next;
      if (queue->head == NULL) queue->tail = NULL;
      frame_free(frame);
    }
  }
  if (queue->head == NULL && ended) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  if (copied == 0 && !ended) return NGHTTP2_ERR_DEFERRED;
  return (ssize_t)copied;
}

void ms_grpc_send_queue_clear(ms_grpc_send_queue *queue) {
  while (queue->head != NULL) {
    ms_grpc_frame *next = queue->head->next;
    frame_free(queue->head);
    queue->head = next;
  }
  queue->tail = NULL;
  if (queue->accounted != NULL) *queue->accounted -= queue->bytes;
  queue->bytes = 0;
}
