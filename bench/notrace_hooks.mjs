// Module hooks for bench/trace.bench.ts: a second copy of src/ in which
// traced(name, fn) returns fn itself, i.e. the same kernel built without
// the function_graph wrappers. Every src/ module imported from a module
// whose URL carries ?notrace gets ?notrace too, so the copy is complete and
// shares no module state with the normal one.
const TAG = 'notrace';

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const parent = context.parentURL ?? '';
  if (
    parent.includes(`?${TAG}`) &&
    r.url.startsWith('file:') &&
    r.url.includes('/src/') &&
    !r.url.includes('?')
  )
    return { ...r, url: `${r.url}?${TAG}` };
  return r;
}

export async function load(url, context, next) {
  const r = await next(url, context);
  if (!url.includes(`?${TAG}`) || !/\/src\/kernel\/trace\.ts\?/.test(url)) return r;
  const src = typeof r.source === 'string' ? r.source : new TextDecoder().decode(r.source);
  const out = src.replace(/(function traced\s*\([^)]*\)\s*\{)/, '$1 return fn;');
  if (out === src) throw new Error('notrace: traced() not found in the compiled src/kernel/trace.ts');
  return { ...r, source: out };
}
