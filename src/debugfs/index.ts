/*
 * debugfs: read-only views of a live machine for people and tools: the
 * object snapshot (Figure 0 of the seed, with holders and refcounts), the
 * difference between two snapshots, and the function_graph tracer's output.
 */
export { describeChanges, diffSnapshots, type ObjectChange } from './diff.ts';
export {
  type DebugSnapshotHook,
  describeOpaque,
  hasDebugSnapshot,
  type JsonObject,
  type JsonValue,
  toJson,
} from './json.ts';
export { decodeTraceArgs, ioctlName, vfioExtensionName } from './names.ts';
export * from './snapshot.ts';
export {
  durationColumn,
  type FtraceOptions,
  formatFtrace,
  globToRegExp,
  KernelTrace,
  type TraceRecord,
} from './tracing.ts';
