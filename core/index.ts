// core's public entry: what services, tools and embedders may use. Nothing inside core imports this file.
export * from './errors.ts';
export { Guest, type GuestOptions } from './frontend/guest.ts';
export { GuestFs, type GuestFsOptions } from './frontend/guest-fs.ts';
export type { GuestFileHandle } from './frontend/file-handle.ts';
export type { Transport, RequestFrame, ResponseFrame } from './frontend/transport.ts';
export { XenfsServer } from './server/server.ts';
export { loadConfig, parseConfig, type ServerConfig, type GuestConfig, type Limits } from './config/config.ts';
export type { TransportKind, XenbusStateName, ExportInfo } from './protocol/control.ts';
export { Op, Feature } from './protocol/opcodes.ts';
export type { Logger, LogLevel } from './util/log.ts';
export { HostWatcher, type HostWatcherOptions, type HostWatchError, type WatchedExport } from './events/host-watcher.ts';
export { RecordedState, type RecordedEntry } from './plugins/recorded-state.ts';
export { reconcile, type ReconcileOptions, type ReconcileProgress, type ReconcileResult } from './plugins/reconcile.ts';
