/* ads_load.c: see ads_load.h. */
#include "tools/ads_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "xds/grpc/grpc.h"
#include "xds/proto/type_urls.h"

static const char *const type_urls[MS_ADS_LOAD_TYPE_COUNT] = {
    MS_XDS_TYPE_URL_CLUSTER,
    MS_XDS_TYPE_URL_CLUSTER_LOAD_ASSIGNMENT,
    MS_XDS_TYPE_URL_SECRET,
};

typedef struct load_stream {
  ms_ads_load *load;
  ms_grpc_call *call;
  int index;
  bool closed;
  bool got[MS_ADS_LOAD_TYPE_COUNT];
  char version[MS_ADS_LOAD_TYPE_COUNT][48];
  char mark_version[MS_ADS_LOAD_TYPE_COUNT][48];
  bool updated[MS_ADS_LOAD_TYPE_COUNT];
  int64_t updated_at_ms[MS_ADS_LOAD_TYPE_COUNT];
} load_stream;

typedef struct load_channel {
  ms_ads_load *load;
  ms_grpc_channel *channel;
  bool ready, closed;
} load_channel;

struct ms_ads_load {
  uv_loop_t *loop;
  ms_ads_load_options options;
  char node_prefix[64];
  char eds_name[128];
  load_stream *streams;
  load_channel *channels;
  ms_ads_load_stats stats;
  int64_t mark_ms;
};

static int64_t now_ms(void) {
  struct timeval now;
  gettimeofday(&now, NULL);
  return (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
}

/* send_request sends one DiscoveryRequest; `first` adds the node. */
static void send_request(load_stream *stream, ms_ads_load_type type, const char *version,
                         const char *nonce, bool first) {
  ms_ads_load *load = stream->load;
  Envoy__Service__Discovery__V3__DiscoveryRequest request =
      ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
  Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
  char id[128];
  /* A bare name: it claims no identity beyond the caller's certificate. */
  snprintf(id, sizeof(id), "%s-%d", load->node_prefix, stream->index);
  if (first) {
    node.id = id;
    node.cluster = "load";
    request.node = &node;
  }
  char *eds[1] = {load->eds_name};
  char *sds[2] = {"default", "ROOTCA"};
  request.type_url = (char *)type_urls[type];
  request.version_info = (char *)version;
  request.response_nonce = (char *)nonce;
  if (type == MS_ADS_LOAD_EDS) {
    request.n_resource_names = 1;
    request.resource_names = eds;
  } else if (type == MS_ADS_LOAD_SDS) {
    request.n_resource_names = 2;
    request.resource_names = sds;
  }
  uint8_t buffer[1024];
  size_t len = envoy__service__discovery__v3__discovery_request__get_packed_size(&request);
  if (len > sizeof(buffer)) return;
  envoy__service__discovery__v3__discovery_request__pack(&request, buffer);
  ms_grpc_call_send(stream->call, buffer, len);
}

static void on_message(ms_grpc_call *call, const uint8_t *bytes, size_t len, void *arg) {
  load_stream *stream = arg;
  ms_ads_load *load = stream->load;
  Envoy__Service__Discovery__V3__DiscoveryResponse *response =
      envoy__service__discovery__v3__discovery_response__unpack(NULL, len, bytes);
  if (response == NULL) {
    load->stats.bad_messages++;
    return;
  }
  load->stats.responses++;
  for (int type = 0; type < MS_ADS_LOAD_TYPE_COUNT; type++) {
    if (strcmp(response->type_url, type_urls[type]) != 0) continue;
    bool was_ready = stream->got[0] && stream->got[1] && stream->got[2];
    stream->got[type] = true;
    snprintf(stream->version[type], sizeof(stream->version[type]), "%s", response->version_info);
    if (load->mark_ms != 0 && !stream->updated[type] &&
        strcmp(stream->version[type], stream->mark_version[type]) != 0) {
      stream->updated[type] = true;
      stream->updated_at_ms[type] = now_ms();
    }
    if (!was_ready && stream->got[0] && stream->got[1] && stream->got[2]) load->stats.ready++;
    send_request(stream, (ms_ads_load_type)type, response->version_info, response->nonce, false);
  }
  envoy__service__discovery__v3__discovery_response__free_unpacked(response, NULL);
}

static void on_close(ms_grpc_call *call, int grpc_status, const char *grpc_message, void *arg) {
  load_stream *stream = arg;
  stream->closed = true;
  stream->call = NULL;
  stream->load->stats.closed++;
  snprintf(stream->load->stats.last_close_reason, sizeof(stream->load->stats.last_close_reason),
           "%s: %s", ms_grpc_status_name(grpc_status), grpc_message);
}

static const ms_grpc_call_callbacks call_callbacks = {
    .on_message = on_message,
    .on_close = on_close,
};

static void on_state(ms_grpc_channel *channel, ms_grpc_channel_state state, const char *reason,
                     void *arg) {
  load_channel *c = arg;
  if (state == MS_GRPC_CHANNEL_READY) {
    c->ready = true;
    c->load->stats.channels_ready++;
  } else if (state == MS_GRPC_CHANNEL_CLOSED) {
    c->closed = true;
    c->load->stats.channels_closed++;
    snprintf(c->load->stats.last_close_reason, sizeof(c->load->stats.last_close_reason), "%s",
             reason != NULL ? reason : "closed");
  }
}

static const ms_grpc_channel_callbacks channel_callbacks = {.on_state = on_state};

int ms_ads_load_start(uv_loop_t *loop, const ms_ads_load_options *options, ms_ads_load **out_load) {
  if (options->address == NULL || options->ssl_ctx == NULL || options->streams < 1 ||
      options->channels < 1)
    return UV_EINVAL;
  ms_ads_load *load = calloc(1, sizeof(*load));
  if (load == NULL) return UV_ENOMEM;
  load->loop = loop;
  load->options = *options;
  snprintf(load->node_prefix, sizeof(load->node_prefix), "%s",
           options->node_prefix != NULL ? options->node_prefix : "load");
  snprintf(load->eds_name, sizeof(load->eds_name), "%s",
           options->eds_name != NULL ? options->eds_name : "backend");
  load->streams = calloc((size_t)options->streams, sizeof(load_stream));
  load->channels = calloc((size_t)options->channels, sizeof(load_channel));
  if (load->streams == NULL || load->channels == NULL) {
    ms_ads_load_close(load);
    return UV_ENOMEM;
  }
  for (int i = 0; i < options->channels; i++) {
    load->channels[i].load = load;
    ms_grpc_channel_options channel_options = {
        .address = options->address,
        .ssl_ctx = options->ssl_ctx,
        .server_name = options->server_name != NULL ? options->server_name : "localhost",
        .connect_timeout_ms = 20000,
    };
    int rc = ms_grpc_channel_new(loop, &channel_options, &channel_callbacks, &load->channels[i],
                                 &load->channels[i].channel);
    if (rc != 0) {
      ms_ads_load_close(load);
      return rc;
    }
  }
  for (int i = 0; i < options->streams; i++) {
    load_stream *stream = &load->streams[i];
    stream->load = load;
    stream->index = i;
    ms_grpc_channel *channel = load->channels[i % options->channels].channel;
    if (ms_grpc_call_start(channel, MS_XDS_ADS_METHOD, &call_callbacks, stream, &stream->call) !=
        0) {
      stream->closed = true;
      load->stats.closed++;
      continue;
    }
    load->stats.streams++;
    for (int type = 0; type < MS_ADS_LOAD_TYPE_COUNT; type++)
      send_request(stream, (ms_ads_load_type)type, "", "", type == 0);
  }
  *out_load = load;
  return 0;
}

void ms_ads_load_stats_get(const ms_ads_load *load, ms_ads_load_stats *out) {
  *out = load->stats;
}

void ms_ads_load_mark(ms_ads_load *load) {
  load->mark_ms = now_ms();
  for (int i = 0; i < load->options.streams; i++) {
    load_stream *stream = &load->streams[i];
    for (int type = 0; type < MS_ADS_LOAD_TYPE_COUNT; type++) {
      memcpy(stream->mark_version[type], stream->version[type], sizeof(stream->version[type]));
      stream->updated[type] = false;
    }
  }
}

int ms_ads_load_updated(const ms_ads_load *load, ms_ads_load_type type, int64_t *out_last_ms) {
  int count = 0;
  int64_t last = 0;
  for (int i = 0; i < load->options.streams; i++) {
    const load_stream *stream = &load->streams[i];
    if (!stream->updated[type]) continue;
    count++;
    if (stream->updated_at_ms[type] - load->mark_ms > last)
      last = stream->updated_at_ms[type] - load->mark_ms;
  }
  if (out_last_ms != NULL) *out_last_ms = last;
  return count;
}

void ms_ads_load_close(ms_ads_load *load) {
  if (load == NULL) return;
  if (load->channels != NULL)
    for (int i = 0; i < load->options.channels; i++)
      ms_grpc_channel_close(load->channels[i].channel);
  free(load->streams);
  free(load->channels);
  free(load);
}
