# The optional native UDP listener (native/udp_listener.c). `npm install` builds
# it where a C compiler is at hand; src/udp-listener.ts falls back to node:dgram
# where it is not.
{
  "targets": [
    {
      "target_name": "udp_listener",
      "sources": ["native/udp_listener.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
