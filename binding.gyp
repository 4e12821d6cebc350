{
  "targets": [
    {
      "target_name": "xenfs_native",
      "sources": [
        "native/src/addon.cpp",
        "native/src/attached-fuse.cpp",
        "native/src/change-events.cpp",
        "native/src/control-socket.cpp",
        "native/src/engine-binding.cpp",
        "native/src/event-channel.cpp",
        "native/src/event-log.cpp",
        "native/src/event-log-binding.cpp",
        "native/src/export-backend.cpp",
        "native/src/export-backing.cpp",
        "native/src/export-files.cpp",
        "native/src/export-location.cpp",
        "native/src/export-namespace.cpp",
        "native/src/export-readdir.cpp",
        "native/src/export-watch.cpp",
        "native/src/export-xattr.cpp",
        "native/src/front-ring.cpp",
        "native/src/fuse-binding.cpp",
        "native/src/fuse-channel.cpp",
        "native/src/fuse-frontend.cpp",
        "native/src/fuse-frontend-binding.cpp",
        "native/src/grant-binding.cpp",
        "native/src/grant-table.cpp",
        "native/src/guest-memory.cpp",
        "native/src/lock-table.cpp",
        "native/src/inode-registry.cpp",
        "native/src/invalidation.cpp",
        "native/src/request-engine.cpp",
        "native/src/session.cpp",
        "native/src/session-locks.cpp",
        "native/src/shared-memory.cpp",
        "native/src/shared-ring.cpp",
        "native/src/worker-pool.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_ADDON_API_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-frtti", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2", "-pthread"],
      "ldflags": ["-pthread"]
    },
    {
      "target_name": "xenfs-enter",
      "type": "executable",
      "sources": ["native/enter/xenfs-enter.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
