// JavaScript faces of the grant table.
//  GrantTable (granter side): `new GrantTable(memory, offsetBytes, entries)`; `grant(ref, domid, frame, readOnly)`,
//    `grantMany(refs, frames, domid, readOnly)`, `endAccess(ref)` → boolean (false while dom0 has it mapped),
//    `endMany(refs)` → number of refs still busy.
//  GrantMap (grantee side, for tools and tests; the server maps inside its engine): `new GrantMap(memFd, memPages,
//    tableOffset, entries, {domid, maxMapped})`; `map(refs, writable)` → {id, buffer}; `unmap(id)`; `mapped`.
#pragma once

#include <napi.h>

#include <map>
#include <memory>

#include "grant-table.hpp"

namespace xenfs {

class GrantTable : public Napi::ObjectWrap<GrantTable> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit GrantTable(const Napi::CallbackInfo& info);

 private:
  Napi::Value Grant(const Napi::CallbackInfo& info);
  Napi::Value GrantMany(const Napi::CallbackInfo& info);
  Napi::Value EndAccess(const Napi::CallbackInfo& info);
  Napi::Value EndMany(const Napi::CallbackInfo& info);

  std::unique_ptr<GrantTableCore> core_;
  Napi::ObjectReference memory_;  // keeps the mapping alive
};

class GrantMap : public Napi::ObjectWrap<GrantMap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit GrantMap(const Napi::CallbackInfo& info);
  ~GrantMap() override;

 private:
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value Unmap(const Napi::CallbackInfo& info);
  Napi::Value Mapped(const Napi::CallbackInfo& info);

  std::unique_ptr<GrantMapper> mapper_;
  std::map<uint32_t, GrantMapping> maps_;
  uint32_t next_id_ = 1;
};

}  // namespace xenfs
