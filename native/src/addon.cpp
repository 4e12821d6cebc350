// The one addon. Each bound class lives in its own .hpp/.cpp pair; this file only registers them.
#include <napi.h>

#include "control-socket.hpp"
#include "engine-binding.hpp"
#include "event-channel.hpp"
#include "event-log-binding.hpp"
#include "front-ring.hpp"
#include "fuse-binding.hpp"
#include "fuse-frontend-binding.hpp"
#include "grant-binding.hpp"
#include "guest-memory.hpp"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("GuestMemory", xenfs::GuestMemory::Define(env));
  exports.Set("GrantTable", xenfs::GrantTable::Define(env));
  exports.Set("GrantMap", xenfs::GrantMap::Define(env));
  exports.Set("EventChannel", xenfs::EventChannel::Define(env));
  exports.Set("FrontRing", xenfs::FrontRing::Define(env));
  exports.Set("FdWatcher", xenfs::FdWatcher::Define(env));
  exports.Set("Engine", xenfs::Engine::Define(env));
  exports.Set("EventLog", xenfs::EventLogHandle::Define(env));
  exports.Set("FuseFrontend", xenfs::FuseFrontendHandle::Define(env));
  exports.Set("configureWorkers", Napi::Function::New(env, xenfs::ConfigureWorkers));
  xenfs::define_control_socket(env, exports);
  xenfs::define_fuse(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(xenfs_native, Init)
