// core's public entry: what services, tools and embedders may use. Nothing inside core imports this file.
export * from './errors.ts';
export { Guest, type GuestOptions } from './frontend/guest.ts';
export { GuestFs, type GuestFsOptions } from './frontend/guest-fs.ts';
export type { GuestFileHandle } from './frontend/file-handle.ts';
export type { Transport, RequestFrame, ResponseFrame } from './frontend/transport.ts';
export { XenfsServer } from './server/server.ts';
export {
  loadConfig, parseConfig, type ServerConfig, type GuestConfig, type Limits, type ExportConfig, type RedisConfig,
  type RedisEndpoint, type EventsConfig, type ServiceConfig,
} from './config/config.ts';
export type { TransportKind, XenbusStateName, ExportInfo } from './protocol/control.ts';
export { Op, Feature } from './protocol/opcodes.ts';
export type { Logger, LogLevel } from './util/log.ts';
export { EVENT_KINDS, isEventKind, type ChangeEvent, type EventKind, type EventOrigin } from './events/change-event.ts';
export {
  defineService, type ServiceDefinition, type ServiceContext, type ServiceSettings, type ServiceSubscriptions,
  type ServiceHealth, type EventOutcome, type GuestTarget, type GuestFileReader, type GuestFileStat, type GuestFileType,
  type GuestDirEntry, type ReadOptions, type PolicyHooks, type SnapshotHooks, type Release, type Denial,
} from './plugins/plugin-api.ts';
export { checkDefinition } from './plugins/check-definition.ts';
export { validateServiceConfig, type ConfigSchema, type ConfigSchemaType } from './plugins/service-config.ts';
export { HostWatcher, type HostWatcherOptions, type HostWatchError, type WatchedExport } from './events/host-watcher.ts';
export { RecordedState, type RecordedEntry } from './plugins/recorded-state.ts';
export { reconcile, type ReconcileOptions, type ReconcileProgress, type ReconcileResult } from './plugins/reconcile.ts';
