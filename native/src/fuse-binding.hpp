// The JavaScript face of fuse-channel: `fuseProbe(dir, opts)` mounts a connection at `dir`, negotiates INIT
// and unmounts again, reporting what the kernel offers (protocol version, passthrough); `fuseDeviceCheck(fd)`
// says whether a descriptor is /dev/fuse.
#pragma once

#include <napi.h>

namespace xenfs {

void define_fuse(Napi::Env env, Napi::Object exports);

}  // namespace xenfs
