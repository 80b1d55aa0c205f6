// A UDP socket that reads and writes datagrams in batches: recvmmsg(2)
// fills up to BATCH datagrams per system call, JavaScript answers them in one
// callback, and sendmmsg(2) sends the answers that were ready in one call.
// The server's listeners use it, and forward's sockets connected to an
// upstream.
//
// Why hand-written: node:dgram costs ~5.5 us of user time per query and reply
// before any DNS work (a 64 KiB allocation shrunk to size and an ArrayBuffer
// per datagram, an address object, an event emission, a SendWrap per reply),
// 1.3-1.8 us here (bench/udp-listener.ts; README, Performance). No maintained npm package does batched UDP. Linux only; the
// server uses node:dgram where this is not built (src/udp-listener.ts).
//
// Node-API only (no V8 or libuv ABI beyond uv_poll), so one build serves
// every Node version from 18 on.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

// Datagrams per recvmmsg; also the most answers sent per sendmmsg.
#define BATCH 64
// A slot holds the largest datagram; only the pages a datagram touches become resident.
#define SLOT 65536
// Bytes of answers waiting for the batch's sendmmsg.
#define SEND_ARENA (256 * 1024)
// Per received datagram, in the Int32Array JavaScript reads: length, port, kind, address (4 words), scope id.
#define META 8
enum { KIND_IPV4 = 4, KIND_IPV6 = 6, KIND_IPV4_MAPPED = 46 };

typedef struct Listener {
  int fd;
  int family;
  napi_env env;
  uv_poll_t poll;
  int polling;
  napi_ref on_batch;
  napi_ref on_error;
  napi_async_context context;
  int in_batch;
  int close_requested;
  int closed;
  unsigned char *slab;
  int32_t *meta;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in6 from[BATCH];
  int queued;
  size_t arena_used;
  unsigned char *arena;
  struct mmsghdr out[BATCH];
  struct iovec out_iov[BATCH];
  struct sockaddr_in6 to[BATCH];
} Listener;

static napi_value throw_errno(napi_env env, int error, const char *what) {
  char message[320];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  const char *code = error == EADDRINUSE ? "EADDRINUSE" : error == EACCES ? "EACCES" : error == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : "ERR_UDP_LISTENER";
  napi_throw_error(env, code, message);
  return NULL;
}

#define CALL(env, call)                                    \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), NULL, "node-api: " #call);   \
      return NULL;                                         \
    }                                                      \
  } while (0)

// Parses "a.b.c.d", "x::y" or "fe80::1%eth0" into a sockaddr for a socket of `family`.
static int to_sockaddr(int family, const char *host, int port, struct sockaddr_in6 *out, socklen_t *length) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *length = sizeof *v4;
    return inet_pton(AF_INET, host, &v4->sin_addr) == 1 ? 0 : -1;
  }
  char copy[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  snprintf(copy, sizeof copy, "%s", host);
  char *scope = strchr(copy, '%');
  if (scope != NULL) *scope++ = '\0';
  out->sin6_family = AF_INET6;
  out->sin6_port = htons(port);
  *length = sizeof *out;
  if (inet_pton(AF_INET6, copy, &out->sin6_addr) == 1) {
    if (scope != NULL) out->sin6_scope_id = if_nametoindex(scope) ? if_nametoindex(scope) : (uint32_t)atoi(scope);
    return 0;
  }
  // An IPv4 client of a dual-stack socket, written the IPv4 way.
  struct in_addr v4;
  if (inet_pton(AF_INET, copy, &v4) != 1) return -1;
  memset(&out->sin6_addr, 0, sizeof out->sin6_addr);
  out->sin6_addr.s6_addr[10] = 0xff;
  out->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&out->sin6_addr.s6_addr[12], &v4, 4);
  return 0;
}

static Listener *unwrap(napi_env env, napi_value value) {
  Listener *listener = NULL;
  if (napi_get_value_external(env, value, (void **)&listener) != napi_ok || listener == NULL) {
    napi_throw_type_error(env, NULL, "not a UDP listener");
    return NULL;
  }
  return listener;
}

// Reads a call's arguments (missing ones are undefined); the first must be a listener, else null with an exception pending.
static Listener *listener_call(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "node-api: napi_get_cb_info");
    return NULL;
  }
  return unwrap(env, argv[0]);
}

static void flush(Listener *listener) {
  int sent = 0;
  while (sent < listener->queued) {
    int count = sendmmsg(listener->fd, listener->out + sent, listener->queued - sent, MSG_DONTWAIT);
    if (count < 0) {
      if (errno == EINTR) continue;
      // The one answer the kernel refused is skipped (UDP: the client asks again); the rest still go.
      count = 1;
    }
    sent += count;
  }
  listener->queued = 0;
  listener->arena_used = 0;
}

static void free_listener(uv_handle_t *handle) {
  Listener *listener = handle->data;
  free(listener->slab);
  free(listener->meta);
  free(listener->arena);
  free(listener);
}

static void cleanup_hook(void *data);

// Stops reading, closes the socket and frees the listener once libuv lets go of the poll handle.
static void finish_close(Listener *listener) {
  if (listener->closed) return;
  listener->closed = 1;
  napi_remove_env_cleanup_hook(listener->env, cleanup_hook, listener);
  if (listener->on_batch != NULL) napi_delete_reference(listener->env, listener->on_batch);
  if (listener->on_error != NULL) napi_delete_reference(listener->env, listener->on_error);
  listener->on_error = NULL;
  if (listener->context != NULL) napi_async_destroy(listener->env, listener->context);
  listener->on_batch = NULL;
  listener->context = NULL;
  // libuv stops watching the descriptor before it is closed (uv_poll's rule); the poll handle does not own it.
  int fd = listener->fd;
  if (listener->polling) {
    uv_poll_stop(&listener->poll);
    uv_close((uv_handle_t *)&listener->poll, free_listener);
  } else {
    free_listener((uv_handle_t *)&listener->poll);
  }
  close(fd);
}

// A worker thread (or the process) ends without closing the listener. Node unloads this module
// right after, before libuv runs close callbacks, so none is given: the socket and buffers go now,
// the struct holding the poll handle is left to the ending thread (a few KiB, once per listener).
static void cleanup_hook(void *data) {
  Listener *listener = data;
  if (listener->closed) return;
  listener->closed = 1;
  if (listener->polling) {
    uv_poll_stop(&listener->poll);
    uv_close((uv_handle_t *)&listener->poll, NULL);
  }
  close(listener->fd);
  free(listener->slab);
  free(listener->meta);
  free(listener->arena);
  listener->slab = NULL;
  listener->meta = NULL;
  listener->arena = NULL;
}

// Calls `function` with one number. make_callback, not call_function: promise jobs and nextTicks
// run after it, as after a dgram event. During a batch, answers queue for one sendmmsg after it.
static void call_js(Listener *listener, napi_ref function, int32_t value, int batch) {
  napi_env env = listener->env;
  napi_handle_scope scope;
  napi_value callback, receiver, argument, result;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, function, &callback);
  napi_get_global(env, &receiver);
  napi_create_int32(env, value, &argument);
  listener->in_batch = batch;
  napi_status called = napi_make_callback(env, listener->context, receiver, callback, 1, &argument, &result);
  listener->in_batch = 0;
  if (batch) flush(listener);
  if (called == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

// Gives JavaScript what a read failed with, as a negative errno: on a connected socket, an ICMP
// error from the peer (ECONNREFUSED: nothing listens there).
static void report_error(Listener *listener, int error) {
  if (listener->on_error != NULL) call_js(listener, listener->on_error, -error, 0);
}

// Reads one batch and hands it to JavaScript; the answers given meanwhile go out in one sendmmsg.
static void read_batch(Listener *listener) {
  for (int i = 0; i < BATCH; i++) listener->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
  int count = recvmmsg(listener->fd, listener->msgs, BATCH, MSG_DONTWAIT, NULL);
  if (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return report_error(listener, errno);
  if (count <= 0) return;
  for (int i = 0; i < count; i++) {
    int32_t *meta = listener->meta + i * META;
    meta[0] = (int32_t)listener->msgs[i].msg_len;
    struct sockaddr_in6 *from = &listener->from[i];
    if (from->sin6_family == AF_INET) {
      struct sockaddr_in *v4 = (struct sockaddr_in *)from;
      meta[1] = ntohs(v4->sin_port);
      meta[2] = KIND_IPV4;
      memcpy(&meta[3], &v4->sin_addr, 4);
    } else {
      meta[1] = ntohs(from->sin6_port);
      if (IN6_IS_ADDR_V4MAPPED(&from->sin6_addr)) {
        meta[2] = KIND_IPV4_MAPPED;
        memcpy(&meta[3], &from->sin6_addr.s6_addr[12], 4);
      } else {
        meta[2] = KIND_IPV6;
        memcpy(&meta[3], &from->sin6_addr, 16);
      }
      meta[7] = (int32_t)from->sin6_scope_id;
    }
  }
  call_js(listener, listener->on_batch, count, 1);
}

// One batch per readable event, then other I/O gets its turn (libuv's dgram reads 32); the poll is
// level-triggered, so what is left is read on the next turn.
static void on_readable(uv_poll_t *handle, int status, int events) {
  Listener *listener = handle->data;
  if (status >= 0) {
    read_batch(listener);
  } else if (!listener->close_requested) {
    // A pending socket error (an ICMP error on a connected socket) makes libuv stop the poll: take
    // the error (which clears it), poll again, and report it.
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(listener->fd, SOL_SOCKET, SO_ERROR, &error, &length);
    uv_poll_start(&listener->poll, UV_READABLE, on_readable);
    if (error != 0) report_error(listener, error);
  }
  if (listener->close_requested) finish_close(listener);
}

// open(ipv6: boolean, host, port, reusePort, receiveBufferBytes) -> listener
static napi_value open_listener(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool ipv6, reuse_port;
  int32_t port, receive_buffer;
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t host_length;
  CALL(env, napi_get_value_bool(env, argv[0], &ipv6));
  CALL(env, napi_get_value_string_latin1(env, argv[1], host, sizeof host, &host_length));
  CALL(env, napi_get_value_int32(env, argv[2], &port));
  CALL(env, napi_get_value_bool(env, argv[3], &reuse_port));
  CALL(env, napi_get_value_int32(env, argv[4], &receive_buffer));
  int family = ipv6 ? AF_INET6 : AF_INET;
  struct sockaddr_in6 address;
  socklen_t address_length;
  if (to_sockaddr(family, host, port, &address, &address_length) != 0) return throw_errno(env, EINVAL, host);
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int on = 1, off = 0;
  char where[INET6_ADDRSTRLEN + IF_NAMESIZE + 16];
  snprintf(where, sizeof where, "bind %s:%d", host, port);
  if ((reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
      || (ipv6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0)
      || (receive_buffer > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer) != 0)
      || bind(fd, (struct sockaddr *)&address, address_length) != 0) {
    int error = errno;
    close(fd);
    return throw_errno(env, error, where);
  }
  Listener *listener = calloc(1, sizeof *listener);
  listener->fd = fd;
  listener->family = family;
  listener->env = env;
  listener->slab = malloc((size_t)BATCH * SLOT);
  listener->meta = calloc(BATCH * META, sizeof(int32_t));
  listener->arena = malloc(SEND_ARENA);
  if (listener->slab == NULL || listener->meta == NULL || listener->arena == NULL) {
    close(fd);
    free_listener((uv_handle_t *)&listener->poll);
    return throw_errno(env, ENOMEM, "udp listener");
  }
  for (int i = 0; i < BATCH; i++) {
    listener->iov[i].iov_base = listener->slab + (size_t)i * SLOT;
    listener->iov[i].iov_len = SLOT;
    listener->msgs[i].msg_hdr.msg_iov = &listener->iov[i];
    listener->msgs[i].msg_hdr.msg_iovlen = 1;
    listener->msgs[i].msg_hdr.msg_name = &listener->from[i];
    listener->out[i].msg_hdr.msg_iov = &listener->out_iov[i];
    listener->out[i].msg_hdr.msg_iovlen = 1;
    listener->out[i].msg_hdr.msg_name = &listener->to[i];
  }
  listener->poll.data = listener;
  napi_add_env_cleanup_hook(env, cleanup_hook, listener);
  napi_value external;
  CALL(env, napi_create_external(env, listener, NULL, NULL, &external));
  return external;
}

// info(listener) -> [port, inode, slab Buffer, meta Int32Array, local address]
static napi_value listener_info(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Listener *listener = listener_call(env, info, 1, argv);
  if (listener == NULL) return NULL;
  struct sockaddr_in6 address;
  socklen_t length = sizeof address;
  struct stat status;
  if (getsockname(listener->fd, (struct sockaddr *)&address, &length) != 0 || fstat(listener->fd, &status) != 0) return throw_errno(env, errno, "getsockname");
  char inode[32];
  snprintf(inode, sizeof inode, "%llu", (unsigned long long)status.st_ino);
  napi_value port, inode_value, slab, meta_buffer, meta, result;
  CALL(env, napi_create_int32(env, ntohs(address.sin6_port), &port));
  CALL(env, napi_create_string_latin1(env, inode, NAPI_AUTO_LENGTH, &inode_value));
  CALL(env, napi_create_external_buffer(env, (size_t)BATCH * SLOT, listener->slab, NULL, NULL, &slab));
  CALL(env, napi_create_external_arraybuffer(env, listener->meta, BATCH * META * sizeof(int32_t), NULL, NULL, &meta_buffer));
  CALL(env, napi_create_typedarray(env, napi_int32_array, BATCH * META, meta_buffer, 0, &meta));
  char local[INET6_ADDRSTRLEN];
  if (address.sin6_family == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)&address)->sin_addr, local, sizeof local);
  else inet_ntop(AF_INET6, &address.sin6_addr, local, sizeof local);
  napi_value local_value;
  CALL(env, napi_create_string_latin1(env, local, NAPI_AUTO_LENGTH, &local_value));
  CALL(env, napi_create_array_with_length(env, 5, &result));
  napi_set_element(env, result, 0, port);
  napi_set_element(env, result, 1, inode_value);
  napi_set_element(env, result, 2, slab);
  napi_set_element(env, result, 3, meta);
  napi_set_element(env, result, 4, local_value);
  return result;
}

// start(listener, onBatch(count), onError(negativeErrno), keepAlive): reads from now on. Without
// keepAlive the socket does not keep the event loop alive (node:dgram's unref()).
static napi_value start(napi_env env, napi_callback_info info) {
  napi_value argv[4], name;
  Listener *listener = listener_call(env, info, 4, argv);
  if (listener == NULL) return NULL;
  if (listener->polling || listener->closed) return NULL;
  bool keep_alive;
  CALL(env, napi_get_value_bool(env, argv[3], &keep_alive));
  CALL(env, napi_create_reference(env, argv[1], 1, &listener->on_batch));
  CALL(env, napi_create_reference(env, argv[2], 1, &listener->on_error));
  CALL(env, napi_create_string_utf8(env, "UDPLISTENER", NAPI_AUTO_LENGTH, &name));
  CALL(env, napi_async_init(env, NULL, name, &listener->context));
  uv_loop_t *loop;
  CALL(env, napi_get_uv_event_loop(env, &loop));
  if (uv_poll_init(loop, &listener->poll, listener->fd) != 0) return throw_errno(env, EINVAL, "uv_poll_init");
  listener->polling = 1;
  uv_poll_start(&listener->poll, UV_READABLE, on_readable);
  if (!keep_alive) uv_unref((uv_handle_t *)&listener->poll);
  return NULL;
}

// connect(listener, host, port): the socket talks to that peer only (an upstream); send() to it
// then takes an empty host.
static napi_value connect_listener(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  Listener *listener = listener_call(env, info, 3, argv);
  if (listener == NULL) return NULL;
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t host_length;
  int32_t port;
  CALL(env, napi_get_value_string_latin1(env, argv[1], host, sizeof host, &host_length));
  CALL(env, napi_get_value_int32(env, argv[2], &port));
  struct sockaddr_in6 to;
  socklen_t to_length;
  if (to_sockaddr(listener->family, host, port, &to, &to_length) != 0) return throw_errno(env, EINVAL, host);
  if (connect(listener->fd, (struct sockaddr *)&to, to_length) != 0) return throw_errno(env, errno, "connect");
  return NULL;
}

// send(listener, buffer, port, host) -> 0, or a negative errno; host '' for the connected peer.
// During a batch the answer waits for the batch's sendmmsg; otherwise it goes at once.
static napi_value send_datagram(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  Listener *listener = listener_call(env, info, 4, argv);
  if (listener == NULL) return NULL;
  void *data;
  size_t length, host_length;
  int32_t port;
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  CALL(env, napi_get_buffer_info(env, argv[1], &data, &length));
  CALL(env, napi_get_value_int32(env, argv[2], &port));
  CALL(env, napi_get_value_string_latin1(env, argv[3], host, sizeof host, &host_length));
  int error = 0;
  struct sockaddr_in6 to;
  socklen_t to_length;
  int connected = host_length == 0;
  if (listener->closed || listener->close_requested) {
    error = EBADF;
  } else if (!connected && to_sockaddr(listener->family, host, port, &to, &to_length) != 0) {
    error = EINVAL;
  } else if (!listener->in_batch || length > SEND_ARENA) {
    if (sendto(listener->fd, data, length, MSG_DONTWAIT, connected ? NULL : (struct sockaddr *)&to, connected ? 0 : to_length) < 0) error = errno;
  } else {
    if (listener->queued == BATCH || listener->arena_used + length > SEND_ARENA) flush(listener);
    int i = listener->queued++;
    memcpy(listener->arena + listener->arena_used, data, length);
    listener->out_iov[i].iov_base = listener->arena + listener->arena_used;
    listener->out_iov[i].iov_len = length;
    listener->arena_used += length;
    if (connected) {
      listener->out[i].msg_hdr.msg_name = NULL;
      listener->out[i].msg_hdr.msg_namelen = 0;
    } else {
      listener->to[i] = to;
      listener->out[i].msg_hdr.msg_name = &listener->to[i];
      listener->out[i].msg_hdr.msg_namelen = to_length;
    }
  }
  CALL(env, napi_create_int32(env, -error, &result));
  return result;
}

// name(listener, index) -> the address of the datagram at `index` of this batch, as node:dgram writes it.
static napi_value address_name(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  Listener *listener = listener_call(env, info, 2, argv);
  if (listener == NULL) return NULL;
  int32_t index;
  CALL(env, napi_get_value_int32(env, argv[1], &index));
  if (index < 0 || index >= BATCH) return throw_errno(env, EINVAL, "name");
  struct sockaddr_in6 *from = &listener->from[index];
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (from->sin6_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)from)->sin_addr, text, sizeof text);
  } else {
    inet_ntop(AF_INET6, &from->sin6_addr, text, INET6_ADDRSTRLEN);
    if (IN6_IS_ADDR_LINKLOCAL(&from->sin6_addr) && from->sin6_scope_id > 0) {
      size_t used = strlen(text);
      text[used] = '%';
      if (if_indextoname(from->sin6_scope_id, text + used + 1) == NULL) snprintf(text + used + 1, IF_NAMESIZE + 1, "%u", from->sin6_scope_id);
    }
  }
  CALL(env, napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &result));
  return result;
}

// receiveBufferSize(listener, bytes?) -> the kernel's size (doubled, as getsockopt reports it).
static napi_value receive_buffer_size(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  Listener *listener = listener_call(env, info, 2, argv);
  if (listener == NULL) return NULL;
  if (listener->closed) return throw_errno(env, EBADF, "receive buffer");
  napi_valuetype type;
  CALL(env, napi_typeof(env, argv[1], &type));
  if (type == napi_number) {
    int32_t bytes;
    CALL(env, napi_get_value_int32(env, argv[1], &bytes));
    if (setsockopt(listener->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0) return throw_errno(env, errno, "setsockopt SO_RCVBUF");
  }
  int size = 0;
  socklen_t length = sizeof size;
  if (getsockopt(listener->fd, SOL_SOCKET, SO_RCVBUF, &size, &length) != 0) return throw_errno(env, errno, "getsockopt SO_RCVBUF");
  CALL(env, napi_create_int32(env, size, &result));
  return result;
}

// close(listener): nothing more is read or sent; during a batch, once it ends.
static napi_value close_listener(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Listener *listener = listener_call(env, info, 1, argv);
  if (listener == NULL) return NULL;
  listener->close_requested = 1;
  if (!listener->in_batch) finish_close(listener);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
    {"open", NULL, open_listener, NULL, NULL, NULL, napi_default, NULL},
    {"info", NULL, listener_info, NULL, NULL, NULL, napi_default, NULL},
    {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
    {"connect", NULL, connect_listener, NULL, NULL, NULL, napi_default, NULL},
    {"send", NULL, send_datagram, NULL, NULL, NULL, napi_default, NULL},
    {"name", NULL, address_name, NULL, NULL, NULL, napi_default, NULL},
    {"receiveBufferSize", NULL, receive_buffer_size, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, close_listener, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
